//! `ferrotune run`, as a user runs it: the built binary running real programs (Python and
//! shell scripts) against a SQLite study in a fresh temporary directory.

#![cfg(unix)]

use ferrotune::study::FAILED_TRIAL_ATTR;
use ferrotune::{FrozenTrial, TrialState};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{minimizing, Scratch, BIN};

/// A fresh directory with the Python helper in it.
fn scratch(name: &str) -> Scratch {
    let s = Scratch::new("run", name);
    let out = Command::new(BIN)
        .args(["helper", "python", "--write"])
        .arg(&s.dir)
        .output()
        .expect("run ferrotune helper");
    assert!(out.status.success(), "{out:?}");
    s
}

impl Scratch {
    fn command(&self, study: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(&self.dir)
            .args(["run", "--study", study, "--storage", &self.url])
            .args(args);
        cmd
    }

    /// Runs `ferrotune run --study STUDY --storage URL ARGS…`.
    fn run(&self, study: &str, args: &[&str]) -> Run {
        let start = Instant::now();
        let out = self.command(study, args).output().expect("run ferrotune");
        Run::new(out, start.elapsed())
    }
}

struct Run {
    code: Option<i32>,
    out: String,
    err: String,
    took: Duration,
}

impl Run {
    fn new(out: Output, took: Duration) -> Run {
        Run {
            code: out.status.code(),
            out: String::from_utf8_lossy(&out.stdout).into_owned(),
            err: String::from_utf8_lossy(&out.stderr).into_owned(),
            took,
        }
    }

    fn ok(&self) -> &Run {
        assert_eq!(
            self.code,
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            self.out,
            self.err
        );
        self
    }
}

fn in_state(trials: &[Arc<FrozenTrial>], state: TrialState) -> Vec<&Arc<FrozenTrial>> {
    trials.iter().filter(|t| t.state == state).collect()
}

/// Running and not a zombie (a killed grandchild may wait a while for init to reap it).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn assert_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .expect("a pid")
}

fn system_attr<'a>(t: &'a FrozenTrial, key: &str) -> &'a Value {
    t.system_attrs
        .get(key)
        .unwrap_or_else(|| panic!("trial {} has no {key}: {:?}", t.number, t.system_attrs))
}

const X_SPACE: &str = "[params.x]\ntype = \"float\"\nlow = 0.0\nhigh = 2.0\n";

const TRAIN: &str = r#"
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ferrotune_report import params, report
p = params()
x = float(sys.argv[1])
assert x == p["x"], (x, p)
assert os.environ["FERROTUNE_PARAM_X"] == sys.argv[1]
assert ("FERROTUNE_PARAM_MOMENTUM" in os.environ) == (p["opt"] == "sgd")
assert os.getcwd() == os.environ["RUNNER_CWD"], "trials run in the runner's directory"
seen = {k: v for k, v in os.environ.items() if k.startswith("FERROTUNE_")}
seen["argv"] = sys.argv[1:]
with open(os.path.join(os.environ["FERROTUNE_TRIAL_DIR"], "seen.json"), "w") as f:
    json.dump(seen, f)
print("training with", p)
for step in range(3):
    report(step=step, loss=(x - 1) ** 2 + 1.0 / (step + 1), aux=step)
report(loss=(x - 1) ** 2)
"#;

#[test]
fn a_python_script_reports_steps_and_a_final_value() {
    let s = scratch("python");
    s.write("train.py", TRAIN);
    s.write(
        "space.toml",
        &format!(
            "{X_SPACE}[params.opt]\ntype = \"categorical\"\nchoices = [\"adam\", \"sgd\"]\n\
             [params.momentum]\ntype = \"float\"\nlow = 0.0\nhigh = 0.9\nwhen = {{ opt = \"sgd\" }}\n"
        ),
    );
    let out = s
        .command(
            "py",
            &minimizing(
                "6",
                &[
                    "--metric",
                    "loss",
                    "--sampler",
                    "random",
                    "--pruner",
                    "none",
                    "--seed",
                    "7",
                    "--jobs",
                    "2",
                ],
                &["python3", "train.py", "{x}", "--momentum={momentum?}"],
            ),
        )
        .env("RUNNER_CWD", &s.dir)
        .output()
        .unwrap();
    let run = Run::new(out, Duration::ZERO);
    run.ok();
    assert!(
        run.err.contains("6/6 trials with an outcome (6 complete"),
        "{}",
        run.err
    );
    let trials = s.trials("py");
    assert_eq!(trials.len(), 6);
    for t in &trials {
        assert_eq!(t.state, TrialState::Complete, "{t:?}");
        let x = t.params["x"].as_f64().unwrap();
        let loss = t.value().unwrap();
        assert!((loss - (x - 1.0).powi(2)).abs() < 1e-12);
        assert_eq!(
            t.intermediate_values.keys().copied().collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(t.user_attrs["metrics"]["aux"], 2.0);
        let dir = PathBuf::from(system_attr(t, "ferrotune:process")["dir"].as_str().unwrap());
        assert_eq!(
            dir,
            s.path(&format!("ferrotune-runs/py/trial-{}", t.number))
        );
        let seen: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("seen.json")).unwrap()).unwrap();
        assert_eq!(seen["FERROTUNE_TRIAL_NUMBER"], t.number.to_string());
        assert_eq!(seen["FERROTUNE_STUDY"], "py");
        let sgd = t.params["opt"].as_str() == Some("sgd");
        assert_eq!(
            seen["argv"].as_array().unwrap().len(),
            if sgd { 2 } else { 1 }
        );
        let params: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("params.json")).unwrap())
                .unwrap();
        assert_eq!(params["momentum"].is_null(), !sgd);
        let stdout = std::fs::read_to_string(dir.join("stdout.log")).unwrap();
        assert!(stdout.starts_with("training with"), "{stdout}");
        assert!(stdout.contains("ferrotune: step=2 loss="), "{stdout}");
        let log = std::fs::read_to_string(dir.join("ferrotune.log")).unwrap();
        assert!(log.contains("outcome:  complete"), "{log}");
    }
    // The study stores what a worker needs.
    let storage = s.storage();
    let study = storage.study_by_name("py").unwrap();
    assert_eq!(
        study.system_attrs["ferrotune:command"],
        serde_json::json!(["python3", "train.py", "{x}", "--momentum={momentum?}"])
    );
    assert_eq!(
        study.system_attrs["ferrotune:metrics"],
        serde_json::json!(["loss"])
    );
    assert_eq!(study.system_attrs["ferrotune:run"]["trials"], 6);
    assert!(study.system_attrs.contains_key("ferrotune:space"));
}

#[test]
fn a_hanging_program_times_out_and_is_killed() {
    let s = scratch("hang");
    s.write("space.toml", X_SPACE);
    // It ignores SIGTERM, so only SIGKILL after the grace period ends it.
    s.write(
        "hang.py",
        "import os, signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n\
         open('hang.pid', 'w').write(str(os.getpid()))\nprint('ferrotune: step=0 value=1', flush=True)\n\
         time.sleep(60)\n",
    );
    let run = s.run(
        "hang",
        &minimizing(
            "1",
            &["--trial-timeout", "700ms", "--kill-grace", "300ms"],
            &["python3", "hang.py"],
        ),
    );
    assert_eq!(run.code, Some(1), "the only trial failed: {}", run.err);
    assert!(run.took < Duration::from_secs(20), "{:?}", run.took);
    let trials = s.trials("hang");
    assert_eq!(trials[0].state, TrialState::Fail);
    let reason = trials[0].fail_reason.as_deref().unwrap();
    assert!(
        reason.starts_with("timed out after 700ms (--trial-timeout)"),
        "{reason}"
    );
    assert_eq!(
        system_attr(&trials[0], "ferrotune:exit"),
        "killed by signal 9 (SIGKILL)"
    );
    assert_gone(read_pid(&s.path("hang.pid")));
}

#[test]
fn a_crash_fails_the_trial_and_keeps_the_end_of_stderr() {
    let s = scratch("crash");
    s.write("space.toml", X_SPACE);
    s.write(
        "crash.py",
        "import sys\nfor i in range(80):\n    print('noise', i, file=sys.stderr)\n\
         print('ferrotune: step=0 value=1', flush=True)\nraise ValueError('the data is bad')\n",
    );
    s.write(
        "segv.py",
        "import os, signal\nprint('ferrotune: value=1', flush=True)\nos.kill(os.getpid(), signal.SIGSEGV)\n",
    );
    let run = s.run(
        "crash",
        &minimizing("1", &["--quiet"], &["python3", "crash.py"]),
    );
    assert_eq!(run.code, Some(1));
    assert!(
        run.err.contains("ValueError: the data is bad"),
        "{}",
        run.err
    );
    let t = &s.trials("crash")[0];
    assert_eq!(t.state, TrialState::Fail);
    assert_eq!(
        t.fail_reason.as_deref(),
        Some("exit status 1; stderr ends with: ValueError: the data is bad")
    );
    let tail = system_attr(t, "ferrotune:stderr_tail").as_str().unwrap();
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 50);
    assert_eq!(lines[49], "ValueError: the data is bad");
    assert!(lines[0].starts_with("noise"), "{tail}");

    let run = s.run("segv", &minimizing("1", &[], &["python3", "segv.py"]));
    assert_eq!(run.code, Some(1));
    let t = &s.trials("segv")[0];
    assert_eq!(
        t.state,
        TrialState::Fail,
        "a reported value does not save a crash"
    );
    assert_eq!(
        t.fail_reason.as_deref(),
        Some("killed by signal 11 (SIGSEGV)")
    );
}

#[test]
fn garbage_output_is_a_missing_metric() {
    let s = scratch("garbage");
    s.write("space.toml", X_SPACE);
    s.write(
        "garbage.sh",
        "echo hello\necho 'ferrotune: what is this'\necho 'ferrotune: loss=abc'\n\
         echo 'ferrotune: acc=0.5'\necho 'ferrotune: value=1' >&2\n",
    );
    s.write(
        "nan.sh",
        "echo 'ferrotune: step=1 value=0.5'\necho 'ferrotune: value=nan'\n",
    );
    let run = s.run("garbage", &minimizing("1", &[], &["sh", "garbage.sh"]));
    assert_eq!(run.code, Some(1));
    let t = &s.trials("garbage")[0];
    assert_eq!(t.state, TrialState::Fail);
    let reason = t.fail_reason.as_deref().unwrap();
    for part in [
        "without reporting `value`",
        "it reported: acc",
        "2 report line(s) were malformed, the first: `ferrotune: what is this`",
        "1 `ferrotune:` line(s) went to stderr",
    ] {
        assert!(reason.contains(part), "{part:?} not in {reason}");
    }
    let run = s.run("nan", &minimizing("1", &[], &["sh", "nan.sh"]));
    assert_eq!(run.code, Some(1));
    let t = &s.trials("nan")[0];
    assert_eq!(t.fail_reason.as_deref(), Some("metric `value` is NaN"));
}

#[test]
fn a_pruned_trial_is_stopped_with_everything_it_started() {
    let s = scratch("prune");
    s.write("space.toml", X_SPACE);
    s.write(
        "slow.py",
        "import os, subprocess, sys, time\n\
         child = subprocess.Popen(['sleep', '60'])\n\
         open('child.pid', 'w').write(str(child.pid))\n\
         open('main.pid', 'w').write(str(os.getpid()))\n\
         print('ferrotune: step=0 value=5', flush=True)\n\
         time.sleep(60)\nprint('ferrotune: value=5')\n",
    );
    let run = s.run(
        "prune",
        &minimizing(
            "1",
            &["--pruner", r#"{"type": "threshold", "upper": 1.0}"#],
            &["python3", "slow.py"],
        ),
    );
    run.ok();
    assert!(run.took < Duration::from_secs(20), "{:?}", run.took);
    assert!(run.err.contains("pruned at step 0"), "{}", run.err);
    let t = &s.trials("prune")[0];
    assert_eq!(t.state, TrialState::Pruned);
    assert_eq!(t.value(), Some(5.0), "its last intermediate value");
    assert_gone(read_pid(&s.path("main.pid")));
    assert_gone(read_pid(&s.path("child.pid")));
}

/// The most intervals open at once, from `start`/`end` lines with a time and a key; per key
/// too.
fn overlaps(log: &str) -> (usize, BTreeMap<String, usize>) {
    let mut events: Vec<(f64, i32, String)> = log
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let t: f64 = w[1].parse().expect("a time");
            (t, if w[0] == "start" { 1 } else { -1 }, w[2].to_owned())
        })
        .collect();
    // Ends before starts at the same instant.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut open, mut max) = (0i32, 0i32);
    let mut per: BTreeMap<String, (i32, i32)> = BTreeMap::new();
    for (_, d, key) in events {
        open += d;
        max = max.max(open);
        let e = per.entry(key).or_default();
        e.0 += d;
        e.1 = e.1.max(e.0);
    }
    (
        max as usize,
        per.into_iter().map(|(k, (_, m))| (k, m as usize)).collect(),
    )
}

const INTERVAL: &str = "echo \"start $(date +%s.%N) ${CUDA_VISIBLE_DEVICES:--}\" >> events.log\n\
    sleep 0.4\n\
    echo \"end $(date +%s.%N) ${CUDA_VISIBLE_DEVICES:--}\" >> events.log\n\
    echo 'ferrotune: value=1'\n";

#[test]
fn parallel_trials_never_exceed_jobs() {
    let s = scratch("jobs");
    s.write("space.toml", X_SPACE);
    s.write("interval.sh", INTERVAL);
    s.run(
        "jobs",
        &minimizing("9", &["--jobs", "3"], &["sh", "interval.sh"]),
    )
    .ok();
    let log = std::fs::read_to_string(s.path("events.log")).unwrap();
    assert_eq!(log.lines().count(), 18);
    let (max, _) = overlaps(&log);
    assert_eq!(max, 3, "at most --jobs at once, and that many: {log}");
    assert_eq!(in_state(&s.trials("jobs"), TrialState::Complete).len(), 9);
}

#[test]
fn half_gpus_pack_two_trials_per_device() {
    let s = scratch("gpus");
    s.write("space.toml", X_SPACE);
    s.write("interval.sh", INTERVAL);
    let run = s.run(
        "gpus",
        &minimizing(
            "12",
            &["--jobs", "8", "--gpus", "0,1", "--gpus-per-trial", "0.5"],
            &["sh", "interval.sh"],
        ),
    );
    run.ok();
    assert!(run.err.contains("hold 4 trial(s)"), "{}", run.err);
    let log = std::fs::read_to_string(s.path("events.log")).unwrap();
    let (max, per_device) = overlaps(&log);
    assert_eq!(max, 4, "{log}");
    assert_eq!(
        per_device.keys().cloned().collect::<Vec<_>>(),
        ["0", "1"],
        "each trial sees one valid device: {log}"
    );
    assert!(per_device.values().all(|&n| n <= 2), "{per_device:?}");
}

#[test]
fn cpus_per_trial_pins_each_slot_to_its_own_cores() {
    let n_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let s = scratch("cpus");
    s.write("space.toml", X_SPACE);
    s.write(
        "cpus.py",
        "import os\nprint(sorted(os.sched_getaffinity(0)), os.environ['OMP_NUM_THREADS'], \
         os.environ['MKL_NUM_THREADS'], os.environ['OPENBLAS_NUM_THREADS'], \
         os.environ['FERROTUNE_SLOT'], file=open('cpus.log', 'a'))\nprint('ferrotune: value=1')\n",
    );
    let jobs = n_cpus.min(2).to_string();
    s.run(
        "cpus",
        &minimizing(
            "4",
            &["--jobs", &jobs, "--cpus-per-trial", "1"],
            &["python3", "cpus.py"],
        ),
    )
    .ok();
    let log = std::fs::read_to_string(s.path("cpus.log")).unwrap();
    let mut per_slot: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in log.lines() {
        let (cores, rest) = line.split_once(']').unwrap();
        let cores = cores.trim_start_matches('[');
        assert!(!cores.contains(','), "one core per trial: {line}");
        let vars: Vec<&str> = rest.split_whitespace().collect();
        assert_eq!(vars[..3], ["1", "1", "1"], "{line}");
        per_slot
            .entry(vars[3].to_owned())
            .or_default()
            .insert(cores.to_owned());
    }
    // A slot keeps its core; slots have different cores.
    assert!(per_slot.values().all(|c| c.len() == 1), "{per_slot:?}");
    let all: BTreeSet<&String> = per_slot.values().flatten().collect();
    assert_eq!(all.len(), per_slot.len(), "{per_slot:?}");
}

#[test]
fn running_again_completes_the_study_to_n_not_n_more() {
    let s = scratch("rerun");
    s.write("space.toml", X_SPACE);
    let quick = minimizing(
        "3",
        &[],
        &["sh", "-c", "echo ferrotune: value=$FERROTUNE_PARAM_X"],
    );
    s.run("rerun", &quick).ok();
    assert_eq!(s.trials("rerun").len(), 3);
    let again = s.run("rerun", &quick);
    again.ok();
    assert!(again.err.contains("already has 3 trials"), "{}", again.err);
    assert_eq!(s.trials("rerun").len(), 3, "not 3 more");
    // A worker-style run: no flags, everything from the study.
    s.run("rerun", &[]).ok();
    assert_eq!(s.trials("rerun").len(), 3);
    // A larger budget extends the study, and is stored for the next run.
    s.run("rerun", &["--trials", "5"]).ok();
    assert_eq!(s.trials("rerun").len(), 5);
    s.run("rerun", &[]).ok();
    assert_eq!(s.trials("rerun").len(), 5);
}

#[test]
fn retried_failures_replace_their_attempt_within_the_budget() {
    let s = scratch("retry");
    s.write("space.toml", X_SPACE);
    // Fails the first time it sees a configuration, succeeds the second time.
    s.write(
        "flaky.sh",
        "m=\"seen-$FERROTUNE_PARAM_X\"\nif [ ! -e \"$m\" ]; then touch \"$m\"; echo flaky >&2; exit 3; fi\n\
         echo \"ferrotune: value=$FERROTUNE_PARAM_X\"\n",
    );
    let args = minimizing("4", &["--jobs", "2", "--retries", "1"], &["sh", "flaky.sh"]);
    s.run("retry", &args).ok();
    let trials = s.trials("retry");
    let complete = in_state(&trials, TrialState::Complete);
    let failed = in_state(&trials, TrialState::Fail);
    assert_eq!(complete.len(), 4, "four configurations, each to the end");
    assert_eq!(failed.len(), 4, "each failed once");
    assert_eq!(trials.len(), 8);
    for t in complete {
        let first = system_attr(t, FAILED_TRIAL_ATTR).as_u64().unwrap() as usize;
        assert_eq!(trials[first].state, TrialState::Fail);
        assert_eq!(trials[first].params["x"], t.params["x"], "same parameters");
    }
    s.run("retry", &args).ok();
    assert_eq!(s.trials("retry").len(), 8, "the study is complete");
}

#[test]
fn ctrl_c_interrupts_requeues_and_a_rerun_completes_the_study() {
    let s = scratch("ctrlc");
    s.write("space.toml", X_SPACE);
    s.write(
        "maybe_slow.sh",
        "if [ -e slow ]; then echo $$ > \"pid-$FERROTUNE_TRIAL_NUMBER\"; sleep 60; fi\n\
         echo \"ferrotune: value=$FERROTUNE_PARAM_X\"\n",
    );
    s.write("slow", "");
    let args = minimizing(
        "4",
        &["--jobs", "2", "--kill-grace", "2s"],
        &["sh", "maybe_slow.sh"],
    );
    let child = s
        .command("ctrlc", &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(s.path("pid-0").exists() && s.path("pid-1").exists()) {
        assert!(Instant::now() < deadline, "trials did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let pids = [read_pid(&s.path("pid-0")), read_pid(&s.path("pid-1"))];
    let sent = Instant::now();
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let run = Run::new(out, sent.elapsed());
    assert_eq!(run.code, Some(130), "{}", run.err);
    assert!(run.took < Duration::from_secs(10), "{:?}", run.took);
    assert!(run.err.contains("re-queued"), "{}", run.err);
    for pid in pids {
        assert_gone(pid);
    }
    let trials = s.trials("ctrlc");
    let failed = in_state(&trials, TrialState::Fail);
    assert_eq!(failed.len(), 2, "{trials:?}");
    for t in &failed {
        assert_eq!(t.fail_reason.as_deref(), Some("interrupted by Ctrl-C"));
    }
    let waiting = in_state(&trials, TrialState::Waiting);
    assert_eq!(waiting.len(), 2);
    assert!(in_state(&trials, TrialState::Running).is_empty());

    std::fs::remove_file(s.path("slow")).unwrap();
    s.run("ctrlc", &args).ok();
    let trials = s.trials("ctrlc");
    let complete = in_state(&trials, TrialState::Complete);
    assert_eq!(complete.len(), 4, "{trials:?}");
    assert_eq!(trials.len(), 6, "2 interrupted attempts + 4 outcomes");
    for t in &failed {
        assert!(
            complete.iter().any(|c| c.params["x"] == t.params["x"]
                && c.system_attrs.get("ferrotune:interrupted_trial")
                    == Some(&Value::from(t.number))),
            "trial {} was resumed with its parameters",
            t.number
        );
    }
}

#[test]
fn mistakes_in_the_command_are_caught_before_the_first_trial() {
    let s = scratch("mistakes");
    s.write(
        "space.toml",
        "[params.lr]\ntype = \"float\"\nlow = 0.1\nhigh = 1.0\n\
         [params.opt]\ntype = \"categorical\"\nchoices = [\"adam\", \"sgd\"]\n\
         [params.momentum]\ntype = \"float\"\nlow = 0.0\nhigh = 1.0\nwhen = { opt = \"sgd\" }\n",
    );
    let with = |cmd: &[&str]| s.run("m", &minimizing("2", &[], cmd));
    let r = with(&["echo", "--lr={learning_rate}"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.err.contains("`{learning_rate}` names no parameter")
            && r.err.contains("lr, opt, momentum"),
        "{}",
        r.err
    );
    let r = with(&["echo", "--momentum", "{momentum}"]);
    assert_eq!(r.code, Some(2));
    assert!(r.err.contains("{momentum?}"), "{}", r.err);
    let r = with(&["echo", "{lr"]);
    assert!(r.err.contains("never closed"), "{}", r.err);
    let r = with(&["no-such-program-xyz", "{lr}"]);
    assert!(r.err.contains("is not in PATH"), "{}", r.err);
    // Nothing was created by the refused runs.
    let storage = s.storage();
    assert!(storage.study_by_name("m").is_err());

    s.write(
        "clash.toml",
        "[params.\"a.b\"]\ntype = \"int\"\nlow = 0\nhigh = 1\n[params.a_b]\ntype = \"int\"\nlow = 0\nhigh = 1\n",
    );
    let r = s.run(
        "clash",
        &[
            "--space",
            "clash.toml",
            "--direction",
            "minimize",
            "--",
            "echo",
        ],
    );
    assert!(r.err.contains("FERROTUNE_PARAM_A_B"), "{}", r.err);
}

#[test]
fn stored_settings_win_and_conflicts_name_the_stored_value() {
    let s = scratch("stored");
    s.write("space.toml", X_SPACE);
    s.run(
        "st",
        &minimizing(
            "1",
            &["--metric", "loss"],
            &["sh", "-c", "echo ferrotune: loss=$FERROTUNE_PARAM_X"],
        ),
    )
    .ok();
    let r = s.run("st", &["--trials", "2", "--", "sh", "-c", "echo other"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.err
            .contains("runs the command `sh -c 'echo ferrotune: loss=$FERROTUNE_PARAM_X'`"),
        "{}",
        r.err
    );
    let r = s.run("st", &["--metric", "acc"]);
    assert!(r.err.contains("reads the metric(s) loss"), "{}", r.err);
    let r = s.run("st", &["--direction", "maximize"]);
    assert!(r.err.contains("directions"), "{}", r.err);
    s.write(
        "other.toml",
        "[params.y]\ntype = \"int\"\nlow = 0\nhigh = 3\n",
    );
    let r = s.run("st", &["--space", "other.toml"]);
    assert!(r.err.contains("another search space"), "{}", r.err);
    assert_eq!(s.trials("st").len(), 1, "no refused run started a trial");
}

#[test]
fn json_lines_tee_and_several_objectives() {
    let s = scratch("json");
    s.write("space.toml", X_SPACE);
    s.write(
        "two.py",
        "import json, os\nx = float(os.environ['FERROTUNE_PARAM_X'])\nprint('hello from', x)\n\
         print('ferrotune: ' + json.dumps({'step': 0, 'a': x, 'b': -x}))\n\
         print('ferrotune: ' + json.dumps({'a': x * x, 'b': float('nan') if x > 5 else 2 * x}))\n",
    );
    let run = s.run(
        "two",
        &[
            "--space",
            "space.toml",
            "--metric",
            "a",
            "--direction",
            "minimize",
            "--metric",
            "b",
            "--direction",
            "maximize",
            "--trials",
            "3",
            "--json",
            "--tee",
            "--",
            "python3",
            "two.py",
        ],
    );
    run.ok();
    let lines: Vec<Value> = run
        .out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{}", run.out);
    for l in &lines[..3] {
        assert_eq!(l["event"], "trial");
        assert_eq!(l["state"], "complete");
        let x = l["params"]["x"].as_f64().unwrap();
        assert!((l["values"]["a"].as_f64().unwrap() - x * x).abs() < 1e-12);
        assert!((l["values"]["b"].as_f64().unwrap() - 2.0 * x).abs() < 1e-12);
    }
    let summary = &lines[3];
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["done"], 3);
    assert_eq!(summary["run"]["finished"], 3);
    assert!(summary["run"]["busy"].as_f64().unwrap() > 0.0);
    assert!(run.err.contains("] hello from"), "--tee: {}", run.err);
    for t in s.trials("two") {
        assert_eq!(t.values.as_ref().unwrap().len(), 2);
        assert_eq!(t.intermediate_values[&0].len(), 2);
    }
}

#[test]
fn the_shell_example_runs() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tune-any-program");
    let s = scratch("shell");
    let run = s.run(
        "quad",
        &[
            "--space",
            examples.join("quad.toml").to_str().unwrap(),
            "--direction",
            "minimize",
            "--trials",
            "4",
            "--sampler",
            "random",
            "--",
            "sh",
            examples.join("train.sh").to_str().unwrap(),
        ],
    );
    run.ok();
    let trials = s.trials("quad");
    assert_eq!(
        in_state(&trials, TrialState::Complete).len() + in_state(&trials, TrialState::Pruned).len(),
        4
    );
    for t in in_state(&trials, TrialState::Complete) {
        let x = t.params["x"].as_f64().unwrap();
        assert!((t.value().unwrap() - ((x - 2.0).powi(2) + 0.2)).abs() < 1e-3);
        assert_eq!(t.intermediate_values.len(), 5);
    }
}

#[test]
fn the_python_helper_is_embedded_and_matches_the_example_copy() {
    let out = Command::new(BIN)
        .args(["helper", "python"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.contains("def report(step=None, **metrics):"));
    assert!(printed.contains("def params():"));
    for example in ["tune-any-program", "pause-resume"] {
        let copy = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(example)
            .join("ferrotune_report.py");
        assert_eq!(
            std::fs::read_to_string(copy).unwrap(),
            printed,
            "refresh it with `ferrotune helper python --write examples/{example}`"
        );
    }
    // The module prints what the runner parses.
    let s = scratch("helper");
    s.write(
        "use.py",
        "import sys\nsys.path.insert(0, '.')\nfrom ferrotune_report import params, report\n\
         assert params() == {}\nreport(step=3, val_loss=0.42, acc=float('nan'))\nreport(val_loss=1e-7)\n\
         try:\n    report(step=-1, x=1)\nexcept ValueError:\n    print('refused')\n",
    );
    let out = Command::new("python3")
        .arg("use.py")
        .current_dir(&s.dir)
        .env_remove("FERROTUNE_PARAMS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "ferrotune: step=3 val_loss=0.42 acc=nan\nferrotune: val_loss=1e-07\nrefused\n"
    );
}

#[test]
fn timeout_stops_starting_trials_and_chdir_runs_inside_the_trial_directory() {
    let s = scratch("timeout");
    s.write("space.toml", X_SPACE);
    let run = s.run(
        "t",
        &minimizing(
            "100",
            &["--timeout", "600ms", "--chdir"],
            &[
                "sh",
                "-c",
                "pwd > where; sleep 0.25; echo ferrotune: value=1",
            ],
        ),
    );
    run.ok();
    assert!(run.err.contains("--timeout 600ms passed"), "{}", run.err);
    let trials = s.trials("t");
    assert!((2..=5).contains(&trials.len()), "{}", trials.len());
    assert!(trials.iter().all(|t| t.state == TrialState::Complete));
    for t in &trials {
        let dir = s.path(&format!("ferrotune-runs/t/trial-{}", t.number));
        let wd = std::fs::read_to_string(dir.join("where")).expect("pwd written in the trial dir");
        assert_eq!(Path::new(wd.trim()), dir);
    }
}
