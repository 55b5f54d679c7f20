//! End-to-end smoke test of `ferrotune-bench schedule` and `schedule-report`: runs are
//! written, the report printed, runs already in the file skipped, PBT left out where it does
//! not apply, plots written, and bad names refused.

use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrotune-bench"))
}

#[test]
fn schedule_writes_resumes_and_reports() {
    let dir = std::env::temp_dir().join(format!("ferrotune-sched-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join("sched.jsonl");
    let _ = std::fs::remove_file(&out);
    let args = [
        "schedule",
        "--problems",
        "lc_hartmann6,pbt_quadratic",
        "--schedules",
        "random,sync_sha,asha_promotion,pbt",
        "--workers",
        "1,4",
        "--seeds",
        "2",
        "--budget-fe",
        "3",
        "--out",
    ];
    let first = bench().args(args).arg(&out).output().expect("runs");
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    // lc_hartmann6: 3 contenders (PBT does not apply); pbt_quadratic: 4; × 2 workers × 2 seeds.
    assert!(stderr.contains("28 scheduled run(s) done"), "{stderr}");
    assert!(stderr.contains("PBT and PB2 skipped"), "{stderr}");
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("## lc_hartmann6 (2 seeds)"), "{stdout}");
    assert!(stdout.contains("| ASHA promotion |"), "{stdout}");
    assert!(stdout.contains("| PBT | 4 |"), "{stdout}");

    let second = bench().args(args).arg(&out).output().expect("runs");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("0 scheduled run(s) done, 28 already"),
        "{stderr}"
    );

    let svg = dir.join("svg");
    let report = bench()
        .args(["schedule-report", "--title", "Smoke"])
        .arg(&out)
        .arg("--svg")
        .arg(&svg)
        .output()
        .expect("runs");
    assert!(report.status.success());
    assert!(String::from_utf8_lossy(&report.stdout).starts_with("# Smoke"));
    assert!(svg.join("pbt_quadratic_4.svg").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn schedule_rejects_unknown_names() {
    let out = std::env::temp_dir().join("ferrotune-sched-cli-never-written.jsonl");
    for args in [
        ["--problems", "nope", "--schedules", "random"],
        ["--problems", "lc_hartmann6", "--schedules", "bogus"],
    ] {
        let bad = bench()
            .arg("schedule")
            .args(args)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("runs");
        assert!(!bad.status.success());
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert!(stderr.contains("unknown"), "{stderr}");
    }
    assert!(!out.exists());
}
