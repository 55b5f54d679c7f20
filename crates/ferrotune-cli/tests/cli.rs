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
        r#"{"params": {"lr": {"type": "float", "low": 1e-5, "high": 0.1, "log": true},
            "layers": {"type": "int", "low": 1, "high": 8},
            "opt": {"type": "categorical", "choices": ["adam", "sgd"]},
            "momentum": {"type": "float", "low": 0, "high": 0.99, "when": {"opt": "sgd"}}}}"#,
    );
    let (ok, out, err) = ferrotune(&["space", "check", path.to_str().expect("utf8")]);
    assert!(ok, "{err}");
    assert!(
        out.contains("lr") && out.contains("float[0.00001, 0.1] log"),
        "{out}"
    );
    assert!(out.contains("int[1, 8]  (8 values)"), "{out}");
    assert!(
        out.contains("float[0, 0.99]  (continuous)  when opt = \"sgd\""),
        "{out}"
    );
    assert!(out.contains("4 parameter(s), valid"), "{out}");
}

#[test]
fn the_example_spaces_check_in_every_format() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/spaces");
    let mut outputs = Vec::new();
    for ext in ["toml", "yaml", "json"] {
        let path = dir.join(format!("classifier.{ext}"));
        let (ok, out, err) = ferrotune(&["space", "check", path.to_str().expect("utf8")]);
        assert!(ok, "{ext}: {err}");
        assert!(out.contains("8 parameter(s), valid"), "{out}");
        assert!(out.contains("when schedule = \"step\""), "{out}");
        outputs.push(out);
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
}

#[test]
fn errors_name_the_file_the_parameter_and_the_bound() {
    let path = write(
        "bad.json",
        r#"{"params": {"lr": {"type": "float", "low": 0.0, "high": 0.1, "log": true}}}"#,
    );
    let (ok, _, err) = ferrotune(&["space", "check", path.to_str().expect("utf8")]);
    assert!(!ok);
    assert!(err.contains("bad.json: parameter \"lr\": "), "{err}");
    assert!(err.contains("low > 0") && err.contains("low=0"), "{err}");
    let path = write(
        "bad.toml",
        "[params.opt]\ntype = \"categorical\"\nchoices = [\"adam\", \"sgd\"]\n\
         [params.momentum]\ntype = \"float\"\nlow = 0.0\nhigh = 0.99\n\
         when = { optimiser = [\"sgd\"] }\n",
    );
    let (ok, _, err) = ferrotune(&["space", "check", path.to_str().expect("utf8")]);
    assert!(!ok);
    assert!(
        err.contains(
            "bad.toml: parameter \"momentum\": `when` refers to \"optimiser\", which is not a \
             parameter (known: opt, momentum)"
        ),
        "{err}"
    );
    let (ok, _, err) = ferrotune(&["space", "check", "/nonexistent/space.json"]);
    assert!(!ok && err.contains("cannot read"), "{err}");
    let (ok, _, err) = ferrotune(&["space", "check", "space.ini"]);
    assert!(
        !ok && err.contains("use .toml, .yaml, .yml or .json"),
        "{err}"
    );
}

#[test]
fn spec_listings_build_real_samplers_and_pruners() {
    let (ok, out, err) = ferrotune(&["samplers"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 6);
    for line in out.lines() {
        let spec: ferrotune::SamplerSpec = serde_json::from_str(line).expect(line);
        spec.build().expect(line);
    }
    let (ok, out, err) = ferrotune(&["pruners"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 8);
    for line in out.lines() {
        let spec: ferrotune::PrunerSpec = serde_json::from_str(line).expect(line);
        spec.build().expect(line);
    }
}

/// A fresh directory for one test's database files.
fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ferrotune-cli-{name}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

/// Fills a SQLite study through the library, as a tuning run would.
fn populate(url: &str, name: &str, trials: u64) {
    use ferrotune::{Optimize, Study, Trial, TrialError};
    let storage = std::sync::Arc::new(ferrotune_sqlite::SqliteStorage::open(url).expect("open"));
    let study = Study::builder()
        .name(name)
        .storage(storage)
        .seed(5)
        .build()
        .expect("study");
    study
        .optimize(
            |t: &mut Trial| -> Result<f64, TrialError> {
                let x = t.suggest_float("x", -2.0, 2.0)?;
                let kind: &str = t.suggest_categorical("kind", &["a", "b"])?;
                t.report(0, x.abs() + 1.0)?;
                Ok(x * x + if kind == "a" { 0.0 } else { 0.5 })
            },
            Optimize::trials(trials),
        )
        .expect("optimize");
}

#[test]
fn study_management_round_trip_on_sqlite() {
    let dir = fresh_dir("manage");
    let url = format!("sqlite:///{}", dir.join("hpo.db").display());
    let s = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--storage", url.as_str()]);
        ferrotune(&all)
    };
    populate(&url, "first", 12);

    let (ok, out, err) = s(&["studies"]);
    assert!(ok, "{err}");
    let row = out.lines().find(|l| l.starts_with("first")).expect(&out);
    assert!(
        row.contains("minimize") && row.contains(" 12 ") && row.contains("tpe"),
        "{row}"
    );

    let (ok, out, err) = s(&["trials", "--study", "first", "--format", "csv"]);
    assert!(ok, "{err}");
    let mut lines = out.lines();
    let header = lines.next().expect("header");
    assert!(
        header.contains("params_kind") && header.contains("params_x"),
        "{header}"
    );
    assert_eq!(lines.count(), 12);

    let (ok, out, err) = s(&["trials", "--study", "first", "--format", "json"]);
    assert!(ok, "{err}");
    let values: Vec<f64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["values"][0]
                .as_f64()
                .expect("value")
        })
        .collect();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);

    let (ok, out, err) = s(&["best", "--study", "first"]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("value {min}")), "{out} vs {min}");

    let copy_url = format!("sqlite:///{}", dir.join("copy.db").display());
    let (ok, out, err) = s(&[
        "copy",
        "--study",
        "first",
        "--to-storage",
        &copy_url,
        "--to",
        "second",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("12 trials, 12 complete"), "{out}");
    let (ok, out, _) = ferrotune(&["best", "--study", "second", "--storage", &copy_url]);
    assert!(ok && out.contains(&format!("value {min}")), "{out}");

    let (ok, _, err) = s(&["rename", "--study", "first", "--to", "renamed"]);
    assert!(ok, "{err}");
    let (ok, _, err) = s(&[
        "create",
        "--study",
        "new",
        "--direction",
        "maximize",
        "--direction",
        "minimize",
        "--sampler",
        "halton",
        "--seed",
        "3",
    ]);
    assert!(ok, "{err}");
    let (ok, out, _) = s(&["studies"]);
    assert!(
        ok && out.contains("renamed") && out.contains("maximize,minimize"),
        "{out}"
    );
    let (ok, out, err) = s(&["delete", "--study", "renamed"]);
    assert!(ok && out.contains("12 trial(s)"), "{out}{err}");
    let (ok, _, err) = s(&["best", "--study", "renamed"]);
    assert!(!ok && err.contains("not found"), "{err}");
}

#[test]
fn read_only_commands_never_create_a_database() {
    let dir = fresh_dir("readonly");
    let path = dir.join("missing.db");
    let url = format!("sqlite:///{}", path.display());
    for cmd in [
        vec!["studies"],
        vec!["trials", "--study", "x"],
        vec!["best", "--study", "x"],
    ] {
        let mut args = cmd.clone();
        args.extend(["--storage", url.as_str()]);
        let (ok, _, err) = ferrotune(&args);
        assert!(!ok, "{cmd:?} succeeded on a missing file");
        assert!(err.contains("missing.db"), "{err}");
    }
    assert!(!path.exists(), "a read-only command created the file");
    let (ok, _, err) = ferrotune(&["studies", "--storage", "mysql://u:secret@h/db"]);
    assert!(
        !ok && err.contains("unknown storage URL") && !err.contains("secret"),
        "{err}"
    );
}
