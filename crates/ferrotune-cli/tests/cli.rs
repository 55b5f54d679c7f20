//! The `ferrotune` binary, run as a user would.

use std::process::Command;

fn ferrotune(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .args(args)
        .output()
        .expect("run ferrotune");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrotune-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn a_valid_space_is_listed() {
    let path = write(
        "ok.json",
        r#"{"lr": {"type": "float", "low": 1e-5, "high": 0.1, "log": true},
            "layers": {"type": "int", "low": 1, "high": 8},
            "opt": {"type": "categorical", "choices": ["adam", "sgd"]}}"#,
    );
    let (ok, out, err) = ferrotune(&["space", "check", path.to_str().expect("utf8")]);
    assert!(ok, "{err}");
    assert!(
        out.contains("lr") && out.contains("float[0.00001, 0.1] log"),
        "{out}"
    );
    assert!(out.contains("int[1, 8]  (8 values)"), "{out}");
    assert!(out.contains("3 parameter(s), valid"), "{out}");
}

#[test]
fn errors_name_the_file_the_parameter_and_the_bound() {
    let path = write(
        "bad.json",
        r#"{"lr": {"type": "float", "low": 0.0, "high": 0.1, "log": true}}"#,
    );
    let (ok, _, err) = ferrotune(&["space", "check", path.to_str().expect("utf8")]);
    assert!(!ok);
    assert!(err.contains("bad.json") && err.contains("`lr`"), "{err}");
    assert!(err.contains("low > 0") && err.contains("low=0"), "{err}");
    let (ok, _, err) = ferrotune(&["space", "check", "/nonexistent/space.json"]);
    assert!(!ok && err.contains("cannot read"), "{err}");
}

#[test]
fn spec_listings_build_real_samplers_and_pruners() {
    let (ok, out, err) = ferrotune(&["samplers"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 4);
    for line in out.lines() {
        let spec: ferrotune::SamplerSpec = serde_json::from_str(line).expect(line);
        spec.build().expect(line);
    }
    let (ok, out, err) = ferrotune(&["pruners"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 5);
    for line in out.lines() {
        let spec: ferrotune::PrunerSpec = serde_json::from_str(line).expect(line);
        spec.build().expect(line);
    }
}
