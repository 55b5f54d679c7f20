//! Ctrl-C during `optimize`, with a real process and a real SIGINT: the first press lets the
//! running trials finish and starts no new one; the second aborts with status 130.
//!
//! The test re-runs its own binary as the child (selected by an environment variable), so
//! the child is an ordinary program calling `Study::optimize`.
#![cfg(all(unix, feature = "signal"))]

use ferrotune::{Optimize, Study, Trial, TrialError, TrialState};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD: &str = "FERROTUNE_CTRL_C_CHILD";

/// The child: two threads of slow trials; prints a line as each trial starts, and a summary
/// of trial states when `optimize` returns.
#[test]
fn child_process() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let study = Study::builder().seed(1).build().expect("study");
    let result = study.optimize(
        |t: &mut Trial| -> Result<f64, TrialError> {
            println!("started {}", t.number());
            std::thread::sleep(Duration::from_millis(700));
            Ok(t.suggest_float("x", 0.0, 1.0)?)
        },
        Optimize::trials(1000).jobs(2),
    );
    let count = |s| study.trials_in(&[s]).expect("trials").len();
    println!(
        "done result={} complete={} running={} total={}",
        result.is_ok(),
        count(TrialState::Complete),
        count(TrialState::Running),
        study.trials().expect("trials").len()
    );
}

/// Starts the child and waits until it has started `n` trials; returns it with its reader.
fn start_child(n: usize) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut started = 0;
    let mut line = String::new();
    while started < n {
        line.clear();
        assert!(
            out.read_line(&mut line).expect("read") > 0,
            "child ended early"
        );
        if line.starts_with("started") {
            started += 1;
        }
    }
    (child, out)
}

fn interrupt(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn first_ctrl_c_finishes_running_trials_and_starts_no_new_one() {
    let (mut child, mut out) = start_child(2);
    interrupt(&child);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).expect("read");
    let status = child.wait().expect("wait");
    assert!(status.success(), "child failed: {rest}");
    let summary = rest
        .lines()
        .find(|l| l.starts_with("done"))
        .unwrap_or_else(|| panic!("no summary in {rest:?}"));
    assert!(summary.contains("running=0"), "{summary}");
    assert!(summary.contains("result=true"), "{summary}");
    // The two trials in flight completed; at most the two threads' next trials had started.
    let complete: usize = field(summary, "complete=");
    let total: usize = field(summary, "total=");
    assert!(complete >= 2 && total <= 4, "{summary}");
    assert_eq!(complete, total, "{summary}");
}

#[test]
fn second_ctrl_c_aborts_with_status_130() {
    let (mut child, _out) = start_child(2);
    interrupt(&child);
    std::thread::sleep(Duration::from_millis(200));
    interrupt(&child);
    let status = child.wait().expect("wait");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut err).expect("stderr");
    }
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("running trials were marked failed"), "{err}");
}

fn field(line: &str, key: &str) -> usize {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}
