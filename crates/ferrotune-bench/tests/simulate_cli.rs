//! End-to-end smoke test of `ferrotune-bench simulate`: it writes records, prints the
//! report, skips runs already in the file on a second call, and `report` reads the file.

use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrotune-bench"))
}

#[test]
fn simulate_writes_resumes_and_reports() {
    let dir = std::env::temp_dir().join(format!("ferrotune-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join("sim.jsonl");
    let _ = std::fs::remove_file(&out);
    let args = [
        "simulate",
        "--problems",
        "branin_mf,lc_hartmann6",
        "--samplers",
        "random,tpe",
        "--pruners",
        "nop,successive_halving",
        "--workers",
        "1,4",
        "--seeds",
        "2",
        "--budget-fe",
        "4",
        "--out",
    ];
    let first = bench().args(args).arg(&out).output().expect("runs");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("## lc_hartmann6"), "{stdout}");
    assert!(stdout.contains("tpe+successive_halving@4"), "{stdout}");
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("32 simulated run(s) done"), "{stderr}");
    let lines = std::fs::read_to_string(&out).expect("written");
    let n = lines.lines().count();
    assert!(lines.lines().all(|l| l.contains("\"version\":3")));

    let second = bench().args(args).arg(&out).output().expect("runs");
    assert!(second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("0 simulated run(s) done, 32 already"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&out).expect("read").lines().count(),
        n
    );

    let report = bench().arg("report").arg(&out).output().expect("runs");
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    assert!(String::from_utf8_lossy(&report.stdout).contains("Simulated multi-fidelity runs"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn simulate_rejects_unknown_names() {
    let out = std::env::temp_dir().join("ferrotune-sim-cli-never-written.jsonl");
    let bad = bench()
        .args(["simulate", "--problems", "nope", "--out"])
        .arg(&out)
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown"));
    let bad = bench()
        .args(["simulate", "--pruners", "bogus", "--out"])
        .arg(&out)
        .output()
        .expect("runs");
    assert!(!bad.status.success());
}
