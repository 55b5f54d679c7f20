//! `ferrotune run --scheduler …` and `ferrotune worker` on a scheduled study: pause and resume
//! with real programs (Python through the helper, and plain shell) against SQLite studies,
//! including a runner killed halfway and started again.

#![cfg(unix)]

use ferrotune::study::{
    CHECKPOINT_ATTR, PARENT_ATTR, REPLACED_BY_ATTR, RESUME_FROM_ATTR, SCHEDULER_STATE_ATTR,
};
use ferrotune::{FrozenTrial, TrialState};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{minimizing, Scratch, BIN};

const SPACE: &str = "[params.x]\ntype = \"float\"\nlow = 0.0\nhigh = 2.0\n";

/// A training loop with state: the "model" is the steps trained and a running sum of losses,
/// saved before each report and checked when loaded. Each start appends what it saw to the
/// file `$SEGMENTS` (one JSON line). `STEP_SLEEP` slows each step down.
const TRAIN: &str = r#"
import json, os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ferrotune_report import (checkpoint_dir, load_checkpoint, max_step, params, report,
                              resume_dir, resume_step, save_checkpoint)
x = float(os.environ["FERROTUNE_PARAM_X"])
assert x == params()["x"]
n = int(os.environ["FERROTUNE_TRIAL_NUMBER"])
state = load_checkpoint()
start = resume_step()
seen = {"trial": n, "run": os.environ.get("RUN", "1"), "x": x, "resume_step": start,
        "resume_dir": str(resume_dir()) if resume_dir() else None, "loaded": state,
        "scratch_empty": not any(checkpoint_dir().iterdir()), "max_step": max_step()}
with open(os.environ["SEGMENTS"], "a") as f:
    f.write(json.dumps(seen) + "\n")
if state is None:
    assert start is None
    state = {"trial": n, "step": 0, "sum": 0.0}
assert state["step"] == (start or 0), (state, start)
for step in range(state["step"] + 1, max_step() + 1):
    time.sleep(float(os.environ.get("STEP_SLEEP", "0.01")))
    loss = (x - 1) ** 2 + 1.0 / step
    state = {"trial": n, "step": step, "sum": state["sum"] + loss}
    save_checkpoint(state)
    report(step=step, value=loss)
"#;

/// One start of a trial's program, as it logged itself.
#[derive(Debug)]
struct Segment {
    trial: u64,
    run: String,
    x: f64,
    resume_step: Option<u64>,
    resume_dir: Option<String>,
    loaded: Option<Value>,
    scratch_empty: bool,
    max_step: u64,
}

/// A fresh directory with the helper, the space and the training loop.
fn scratch(name: &str) -> Scratch {
    let s = Scratch::new("schedule", name);
    let out = Command::new(BIN)
        .args(["helper", "python", "--write"])
        .arg(&s.dir)
        .output()
        .expect("run ferrotune helper");
    assert!(out.status.success(), "{out:?}");
    s.write("space.toml", SPACE);
    s.write("train.py", TRAIN);
    s
}

impl Scratch {
    /// `ferrotune SUBCOMMAND --study STUDY --storage URL ARGS…` in the directory, with the
    /// training loop's variables set.
    fn ferrotune(&self, subcommand: &str, study: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(&self.dir)
            .args([subcommand, "--study", study, "--storage", &self.url])
            .args(args)
            .env("SEGMENTS", self.path("segments.jsonl"))
            .env_remove("RUN")
            .env_remove("STEP_SLEEP");
        cmd
    }

    /// The starts of trial programs so far.
    fn segments(&self) -> Vec<Segment> {
        let text = std::fs::read_to_string(self.path("segments.jsonl")).unwrap_or_default();
        text.lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line).expect("a segment line");
                Segment {
                    trial: v["trial"].as_u64().expect("trial"),
                    run: v["run"].as_str().expect("run").to_owned(),
                    x: v["x"].as_f64().expect("x"),
                    resume_step: v["resume_step"].as_u64(),
                    resume_dir: v["resume_dir"].as_str().map(str::to_owned),
                    loaded: (!v["loaded"].is_null()).then(|| v["loaded"].clone()),
                    scratch_empty: v["scratch_empty"].as_bool().expect("scratch_empty"),
                    max_step: v["max_step"].as_u64().expect("max_step"),
                }
            })
            .collect()
    }
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{err}",
        String::from_utf8_lossy(&out.stdout)
    );
    err
}

fn refused(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn count(trials: &[Arc<FrozenTrial>], state: TrialState) -> usize {
    trials.iter().filter(|t| t.state == state).count()
}

fn steps(t: &FrozenTrial) -> Vec<u64> {
    t.intermediate_values.keys().copied().collect()
}

/// Every trial's reports are steps `first..=last` without gaps (a PBT child's start after
/// its parent's checkpoint).
fn assert_contiguous(trials: &[Arc<FrozenTrial>]) {
    for t in trials {
        let s = steps(t);
        if let Some(&first) = s.first() {
            let expected: Vec<u64> = (first..first + s.len() as u64).collect();
            assert_eq!(s, expected, "trial {} reported {s:?}", t.number);
        }
    }
}

/// The checkpoint a trial holds, `(trial, step)`.
fn checkpoint_of(t: &FrozenTrial, key: &str) -> Option<(u64, u64)> {
    let v = t.system_attrs.get(key)?;
    Some((v["trial"].as_u64()?, v["step"].as_u64()?))
}

#[test]
fn asha_pauses_trials_and_resumes_them_from_their_checkpoints() {
    let s = scratch("asha");
    let out = s
        .ferrotune(
            "run",
            "asha",
            &minimizing(
                "12",
                &[
                    "--scheduler",
                    "asha",
                    "--max-resource",
                    "9",
                    "--jobs",
                    "3",
                    "--sampler",
                    "random",
                    "--seed",
                    "3",
                ],
                &["python3", "train.py"],
            ),
        )
        .output()
        .unwrap();
    let err = ok(&out);
    assert!(err.contains("paused at step 1"), "{err}");
    let trials = s.trials("asha");
    assert_eq!(trials.len(), 12, "only new configurations count");
    assert_eq!(count(&trials, TrialState::Running), 0);
    assert_eq!(count(&trials, TrialState::Fail), 0, "{trials:?}");
    assert!(count(&trials, TrialState::Complete) >= 1, "{trials:?}");
    assert!(count(&trials, TrialState::Paused) >= 6, "{trials:?}");
    assert_contiguous(&trials);
    let by_number: BTreeMap<u64, &Arc<FrozenTrial>> =
        trials.iter().map(|t| (t.number, t)).collect();
    for t in &trials {
        assert_eq!(steps(t).first(), Some(&1), "trial {}", t.number);
        match t.state {
            TrialState::Complete => assert_eq!(steps(t).last(), Some(&9)),
            TrialState::Paused => {
                // Paused at a rung, with its checkpoint on disk.
                let last = *steps(t).last().unwrap();
                assert!(
                    [1, 3].contains(&last),
                    "trial {} paused at {last}",
                    t.number
                );
                assert_eq!(checkpoint_of(t, CHECKPOINT_ATTR), Some((t.number, last)));
                let state = s.path(&format!(
                    "ferrotune-checkpoints/asha/trial-{}/step-{last}/state.pkl",
                    t.number
                ));
                assert!(state.is_file(), "{} is missing", state.display());
            }
            other => panic!("trial {} is {other}", t.number),
        }
    }
    // Each trial started fresh once; every resume loaded its own checkpoint, of its step.
    let segments = s.segments();
    let fresh: Vec<u64> = segments
        .iter()
        .filter(|g| g.resume_step.is_none())
        .map(|g| g.trial)
        .collect();
    assert_eq!(fresh.len(), 12, "{segments:?}");
    assert_eq!(fresh.iter().collect::<BTreeSet<_>>().len(), 12);
    let mut resumed = 0;
    for g in &segments {
        assert!(g.scratch_empty, "a fresh scratch directory: {g:?}");
        assert_eq!(g.max_step, 9);
        let t = by_number[&g.trial];
        assert_eq!(g.x.to_bits(), t.params["x"].as_f64().unwrap().to_bits());
        let Some(step) = g.resume_step else {
            assert!(g.loaded.is_none() && g.resume_dir.is_none());
            continue;
        };
        resumed += 1;
        assert!([1, 3].contains(&step), "{g:?}");
        let loaded = g.loaded.as_ref().expect("the checkpoint's state");
        assert_eq!(loaded["trial"], g.trial, "{g:?}");
        assert_eq!(loaded["step"], step, "{g:?}");
        // The running sum proves the state is the one saved at that step.
        let x = g.x;
        let sum: f64 = (1..=step).map(|k| (x - 1.0).powi(2) + 1.0 / k as f64).sum();
        assert!(
            (loaded["sum"].as_f64().unwrap() - sum).abs() < 1e-9,
            "{g:?}"
        );
        assert!(
            steps(t).contains(&(step + 1)),
            "trial {} went on after step {step}",
            g.trial
        );
    }
    assert!(resumed >= 2, "ASHA promoted trials: {segments:?}");
    // A resumed trial's logs go on in its directory.
    let done = trials
        .iter()
        .find(|t| t.state == TrialState::Complete)
        .unwrap();
    let dir = s.path(&format!("ferrotune-runs/asha/trial-{}", done.number));
    let stdout = std::fs::read_to_string(dir.join("stdout.log")).unwrap();
    for step in 1..=9 {
        assert!(
            stdout.contains(&format!("ferrotune: step={step} ")),
            "{stdout}"
        );
    }
    let log = std::fs::read_to_string(dir.join("ferrotune.log")).unwrap();
    assert!(log.contains("outcome:  paused at step 1"), "{log}");
    assert!(
        log.contains("resumed:  after step 3, from its own checkpoint"),
        "{log}"
    );
    assert!(log.contains("outcome:  complete"), "{log}");
    assert!(
        dir.join("checkpoint/state.pkl").is_file(),
        "a complete trial keeps its final state"
    );
}

#[test]
fn synchronous_successive_halving_from_a_stored_study_and_a_worker() {
    let s = scratch("sha");
    let create = s
        .ferrotune(
            "run",
            "sha",
            &minimizing(
                "9",
                &[
                    "--scheduler",
                    "sha",
                    "--max-resource",
                    "9",
                    "--sampler",
                    "random",
                    "--seed",
                    "5",
                    "--checkpoint-dir",
                    "shared/ckpt",
                    "--create-only",
                ],
                &["python3", "train.py"],
            ),
        )
        .output()
        .unwrap();
    let err = ok(&create);
    assert!(
        err.contains("scheduler successive_halving up to step 9; checkpoints in"),
        "{err}"
    );
    // The worker takes everything, the scheduler included, from the study.
    let out = s
        .ferrotune("worker", "sha", &["--jobs", "3"])
        .output()
        .unwrap();
    ok(&out);
    let trials = s.trials("sha");
    assert_eq!(trials.len(), 9);
    let last: Vec<u64> = trials
        .iter()
        .map(|t| *steps(t).last().expect("a report"))
        .collect();
    let at = |k: u64| last.iter().filter(|&&s| s == k).count();
    // The paper's bracket: 9 at r = 1, the best 3 go on to r = 3, the best one to r = 9.
    assert_eq!((at(1), at(3), at(9)), (6, 2, 1), "{last:?}");
    assert_eq!(count(&trials, TrialState::Complete), 1);
    assert_eq!(count(&trials, TrialState::Pruned), 8, "{trials:?}");
    assert_contiguous(&trials);
    let best_first = trials
        .iter()
        .min_by(|a, b| a.intermediate(1).partial_cmp(&b.intermediate(1)).unwrap())
        .unwrap();
    assert_eq!(best_first.state, TrialState::Complete);
    assert!(s.path("shared/ckpt/sha").is_dir());
    // Resumed runs got their checkpoints from the shared directory.
    let resumes: Vec<Segment> = s
        .segments()
        .into_iter()
        .filter(|g| g.resume_step.is_some())
        .collect();
    assert!(!resumes.is_empty());
    for g in resumes {
        let dir = g.resume_dir.as_deref().unwrap();
        assert!(dir.contains("shared/ckpt/sha/trial-"), "{dir}");
    }
}

#[test]
fn pbt_children_continue_their_parents_checkpoints_with_explored_parameters() {
    let s = scratch("pbt");
    let out = s
        .ferrotune(
            "run",
            "pbt",
            &[
                "--space",
                "space.toml",
                "--direction",
                "minimize",
                "--scheduler",
                "pbt",
                "--population",
                "4",
                "--interval",
                "2",
                "--max-step",
                "8",
                "--jobs",
                "2",
                "--sampler",
                "random",
                "--seed",
                "2",
                "--",
                "python3",
                "train.py",
            ],
        )
        .output()
        .unwrap();
    let err = ok(&out);
    assert!(
        err.contains("no more trials: the scheduler has run every trial it planned"),
        "{err}"
    );
    let trials = s.trials("pbt");
    assert_eq!(count(&trials, TrialState::Complete), 4, "{trials:?}");
    assert_eq!(count(&trials, TrialState::Running), 0);
    assert_eq!(count(&trials, TrialState::Paused), 0);
    assert_eq!(count(&trials, TrialState::Fail), 0);
    assert_contiguous(&trials);
    let by_number: BTreeMap<u64, &Arc<FrozenTrial>> =
        trials.iter().map(|t| (t.number, t)).collect();
    let children: Vec<&Arc<FrozenTrial>> = trials
        .iter()
        .filter(|t| t.system_attrs.contains_key(PARENT_ATTR))
        .collect();
    assert!(!children.is_empty(), "members exploited others: {trials:?}");
    for t in &trials {
        if t.state == TrialState::Pruned {
            let child = t.system_attrs[REPLACED_BY_ATTR].as_u64().unwrap();
            assert!(by_number.contains_key(&child));
            assert!(
                err.contains(&format!("continues as trial {child}")),
                "{err}"
            );
        }
    }
    let segments = s.segments();
    for child in children {
        let parent = child.system_attrs[PARENT_ATTR].as_u64().unwrap();
        let (from, step) = checkpoint_of(child, RESUME_FROM_ATTR).expect("resume_from");
        assert_eq!(from, parent);
        assert!(by_number[&parent].intermediate(step).is_some());
        assert_eq!(steps(child).first(), Some(&(step + 1)), "{child:?}");
        // Its program loaded the parent's state at that step, with its own parameters.
        let first = segments
            .iter()
            .find(|g| g.trial == child.number)
            .expect("the child ran");
        assert_eq!(first.resume_step, Some(step));
        let loaded = first.loaded.as_ref().unwrap();
        assert_eq!(loaded["trial"], parent, "{first:?}");
        assert_eq!(loaded["step"], step);
        assert_eq!(
            first.x.to_bits(),
            child.params["x"].as_f64().unwrap().to_bits()
        );
    }
}

/// Polls the study until `ready` holds for its trials.
fn wait_for(
    s: &Scratch,
    study: &str,
    limit: Duration,
    ready: impl Fn(&[Arc<FrozenTrial>]) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        let trials = ferrotune_sqlite::SqliteStorage::open_existing(&s.url)
            .ok()
            .and_then(|st| {
                use ferrotune::Storage;
                let id = st.study_by_name(study).ok()?.id;
                st.trials(id, None).ok()
            });
        if trials.is_some_and(|t| ready(&t)) {
            return;
        }
        assert!(Instant::now() < deadline, "the study never got there");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_runner_is_continued_by_the_next_one() {
    let s = scratch("kill");
    let args = minimizing(
        "9",
        &[
            "--scheduler",
            "asha",
            "--max-resource",
            "9",
            "--jobs",
            "2",
            "--sampler",
            "random",
            "--seed",
            "11",
            "--heartbeat",
            "200ms",
            "--heartbeat-grace",
            "1s",
            "--kill-grace",
            "1s",
        ],
        &["python3", "train.py"],
    );
    let mut first = s
        .ferrotune("run", "kill", &args)
        .env("STEP_SLEEP", "0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed before the first promotion (it comes with the third result at step 1), so the
    // second runner is the one that resumes paused trials.
    wait_for(&s, "kill", Duration::from_secs(30), |t| {
        count(t, TrialState::Paused) >= 2
            && count(t, TrialState::Running) >= 1
            && t.iter().all(|t| steps(t).iter().all(|&k| k <= 1))
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let at_kill = s.trials("kill");
    let running: Vec<u64> = at_kill
        .iter()
        .filter(|t| t.state == TrialState::Running)
        .map(|t| t.number)
        .collect();
    let paused: BTreeMap<u64, Vec<u64>> = at_kill
        .iter()
        .filter(|t| t.state == TrialState::Paused)
        .map(|t| (t.number, steps(t)))
        .collect();
    assert!(!running.is_empty());
    // Past the heartbeat grace, the dead runner's trials are stale.
    std::thread::sleep(Duration::from_millis(1300));
    let out = s
        .ferrotune("run", "kill", &args)
        .env("RUN", "2")
        .output()
        .unwrap();
    ok(&out);

    let trials = s.trials("kill");
    assert_eq!(trials.len(), 9, "{trials:?}");
    assert_eq!(count(&trials, TrialState::Running), 0, "{trials:?}");
    let by_number: BTreeMap<u64, &Arc<FrozenTrial>> =
        trials.iter().map(|t| (t.number, t)).collect();
    for n in &running {
        let t = by_number[n];
        assert_eq!(t.state, TrialState::Fail, "trial {n}");
        let reason = t.fail_reason.as_deref().unwrap_or_default();
        assert!(reason.contains("no heartbeat"), "trial {n}: {reason}");
    }
    // A trial paused before the kill is still paused, or went on from where it paused.
    for (n, before) in &paused {
        let t = by_number[n];
        assert!(
            matches!(t.state, TrialState::Paused | TrialState::Complete),
            "trial {n} is {}",
            t.state
        );
        assert_eq!(&steps(t)[..before.len()], &before[..], "trial {n}");
    }
    let second: Vec<Segment> = s.segments().into_iter().filter(|g| g.run == "2").collect();
    assert!(
        second.iter().any(|g| g.resume_step.is_some()),
        "the second runner resumed paused trials: {second:?}"
    );
    for g in &second {
        assert!(!running.contains(&g.trial), "a dead trial ran again: {g:?}");
        if let Some(step) = g.resume_step {
            assert_eq!(g.loaded.as_ref().unwrap()["step"], step);
        }
    }
    assert_contiguous(&trials);
    // The stored schedule agrees with the trials: nothing is left running in it.
    let storage = s.storage();
    let study = storage.study_by_name("kill").unwrap();
    // Stored as JSON, or as a string holding it.
    let stored = &study.system_attrs[SCHEDULER_STATE_ATTR];
    let stored = match stored.as_str() {
        Some(text) => serde_json::from_str(text).expect("the scheduler's state"),
        None => stored.clone(),
    };
    let state = &stored["asha"];
    let statuses = state["trials"].as_object().expect("ASHA's trials");
    for t in &trials {
        // A trial killed before the scheduler registered it is unknown to it.
        if !statuses.contains_key(&t.number.to_string()) {
            assert!(running.contains(&t.number), "{state}");
            assert_eq!(t.state, TrialState::Fail);
        }
    }
    for (number, status) in statuses {
        let t = by_number[&number.parse::<u64>().unwrap()];
        let expected = match t.state {
            TrialState::Paused => "paused",
            TrialState::Complete => "completed",
            TrialState::Fail => "failed",
            other => panic!("trial {} is {other}", t.number),
        };
        let name = status
            .as_str()
            .map(str::to_owned)
            .or_else(|| status.as_object().and_then(|o| o.keys().next().cloned()))
            .unwrap_or_default();
        assert_eq!(name, expected, "trial {}: {status}", t.number);
    }
}

#[test]
fn a_running_trial_without_a_heartbeat_does_not_hold_the_run_forever() {
    let s = scratch("orphan");
    let args = minimizing(
        "2",
        &[
            "--scheduler",
            "asha",
            "--max-resource",
            "3",
            "--heartbeat",
            "100ms",
            "--heartbeat-grace",
            "500ms",
        ],
        &["python3", "train.py"],
    );
    let mut create = args.clone();
    create.insert(0, "--create-only");
    ok(&s.ferrotune("run", "orphan", &create).output().unwrap());
    // A runner killed right after it created a trial, before its first heartbeat.
    let storage = s.storage();
    let id = storage.study_by_name("orphan").unwrap().id;
    let orphan = storage.create_trial(id, None).unwrap().unwrap();
    let mut run = s
        .ferrotune("run", "orphan", &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = run.kill();
            panic!("the runner waited for the orphaned trial");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let trials = s.trials("orphan");
    let t = trials.iter().find(|t| t.id == orphan.id).unwrap();
    assert_eq!(t.state, TrialState::Fail);
    assert!(t
        .fail_reason
        .as_deref()
        .unwrap_or_default()
        .contains("no heartbeat"));
    assert_eq!(count(&trials, TrialState::Running), 0);
}

#[test]
fn ctrl_c_leaves_paused_trials_paused_and_nothing_running() {
    let s = scratch("ctrlc");
    let args = minimizing(
        "6",
        &[
            "--scheduler",
            "asha",
            "--max-resource",
            "9",
            "--jobs",
            "2",
            "--sampler",
            "random",
            "--seed",
            "4",
            "--kill-grace",
            "2s",
        ],
        &["python3", "train.py"],
    );
    let child = s
        .ferrotune("run", "ctrlc", &args)
        .env("STEP_SLEEP", "0.1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&s, "ctrlc", Duration::from_secs(30), |t| {
        count(t, TrialState::Paused) >= 2 && count(t, TrialState::Running) >= 1
    });
    let sent = Instant::now();
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert!(sent.elapsed() < Duration::from_secs(10));
    let trials = s.trials("ctrlc");
    assert_eq!(count(&trials, TrialState::Running), 0, "{trials:?}");
    assert!(count(&trials, TrialState::Paused) >= 2, "{trials:?}");
    let interrupted: Vec<&Arc<FrozenTrial>> = trials
        .iter()
        .filter(|t| t.state == TrialState::Fail)
        .collect();
    assert!(!interrupted.is_empty());
    for t in &interrupted {
        assert_eq!(t.fail_reason.as_deref(), Some("interrupted by Ctrl-C"));
    }
    assert_eq!(count(&trials, TrialState::Waiting), interrupted.len());

    // The same command goes on: the re-queued configurations run again, paused ones resume.
    let out = s.ferrotune("run", "ctrlc", &args).output().unwrap();
    ok(&out);
    let trials = s.trials("ctrlc");
    assert_eq!(count(&trials, TrialState::Running), 0, "{trials:?}");
    assert_eq!(count(&trials, TrialState::Waiting), 0, "{trials:?}");
    assert_eq!(trials.len(), 6 + interrupted.len());
    for t in &interrupted {
        assert!(
            trials.iter().any(|r| r.params["x"] == t.params["x"]
                && r.system_attrs.get("ferrotune:interrupted_trial")
                    == Some(&Value::from(t.number))
                && r.state != TrialState::Fail),
            "trial {} ran again with its parameters",
            t.number
        );
    }
    assert_contiguous(&trials);
}

#[test]
fn a_program_that_ignores_the_resume_variables_starts_over_and_still_completes() {
    let s = scratch("restart");
    // Plain shell: no state, no resume; steps 1..3 every time.
    s.write(
        "again.sh",
        "x=$FERROTUNE_PARAM_X\nfor step in 1 2 3; do\n  \
         echo \"ferrotune: step=$step value=$(awk -v x=$x -v s=$step 'BEGIN { print (x - 1) ^ 2 + 1 / s }')\"\n\
         done\n",
    );
    let out = s
        .ferrotune(
            "run",
            "again",
            &minimizing(
                "3",
                &[
                    "--scheduler",
                    "asha",
                    "--max-resource",
                    "3",
                    "--sampler",
                    "random",
                    "--seed",
                    "1",
                ],
                &["sh", "again.sh"],
            ),
        )
        .output()
        .unwrap();
    let err = ok(&out);
    assert!(err.contains("it started over instead of loading"), "{err}");
    assert!(err.contains("(resumed after step 1)"), "{err}");
    let trials = s.trials("again");
    assert_eq!(count(&trials, TrialState::Complete), 1, "{trials:?}");
    assert_eq!(count(&trials, TrialState::Paused), 2, "{trials:?}");
    assert_contiguous(&trials);
    let done = trials
        .iter()
        .find(|t| t.state == TrialState::Complete)
        .unwrap();
    assert_eq!(steps(done), [1, 2, 3]);
    let x = done.params["x"].as_f64().unwrap();
    assert!((done.value().unwrap() - ((x - 1.0).powi(2) + 1.0 / 3.0)).abs() < 1e-5);
}

#[test]
fn protocol_mistakes_fail_the_trial_with_the_fix() {
    let s = scratch("mistakes");
    // Rungs at steps 3 and 9.
    let run = |study: &str, script: &str| {
        s.write("bad.sh", script);
        let out = s
            .ferrotune(
                "run",
                study,
                &minimizing(
                    "1",
                    &[
                        "--scheduler",
                        "asha",
                        "--min-resource",
                        "3",
                        "--max-resource",
                        "9",
                    ],
                    &["sh", "bad.sh"],
                ),
            )
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let trials = s.trials(study);
        assert_eq!(trials[0].state, TrialState::Fail);
        trials[0].fail_reason.clone().unwrap_or_default()
    };
    let reason = run("zero", "echo 'ferrotune: step=0 value=1'\nsleep 5\n");
    assert!(
        reason.contains("step 0") && reason.contains("steps count from 1"),
        "{reason}"
    );
    let reason = run(
        "short",
        "echo 'ferrotune: step=1 value=0.5'\necho 'ferrotune: step=2 value=0.5'\n",
    );
    assert!(
        reason.contains("exited (status 0) after step 2")
            && reason.contains("to step 9 (FERROTUNE_MAX_STEP)"),
        "{reason}"
    );
    let reason = run("fraction", "echo 'ferrotune: step=1.5 value=0.5'\n");
    assert!(
        reason.contains("steps are whole numbers from 1") && reason.contains("step=1.5"),
        "{reason}"
    );
    let reason = run("skipped", "echo 'ferrotune: step=10 value=0.5'\n");
    assert!(
        reason.contains("before the scheduler's last step 9"),
        "{reason}"
    );
}

#[test]
fn scheduler_flags_are_checked_before_anything_runs() {
    let s = scratch("flags");
    let run = |study: &str, flags: &[&str]| {
        s.ferrotune(
            "run",
            study,
            &minimizing("2", flags, &["python3", "train.py"]),
        )
        .output()
        .unwrap()
    };
    let err = refused(&run(
        "p",
        &[
            "--scheduler",
            "asha",
            "--max-resource",
            "9",
            "--pruner",
            "median",
        ],
    ));
    assert!(
        err.contains("--pruner median cannot be combined with a scheduler"),
        "{err}"
    );
    let err = refused(&run("p", &["--scheduler", "pbt", "--max-step", "8"]));
    assert!(
        err.contains("needs --population") && err.contains("--interval"),
        "{err}"
    );
    let err = refused(&run("p", &["--max-resource", "9"]));
    assert!(err.contains("add --scheduler"), "{err}");
    let err = refused(&run("p", &["--checkpoint-dir", "c"]));
    assert!(err.contains("for a study with a scheduler"), "{err}");
    let err = refused(&run(
        "p",
        &[
            "--scheduler",
            "asha",
            "--max-resource",
            "9",
            "--heartbeat",
            "2s",
            "--heartbeat-grace",
            "1s",
        ],
    ));
    assert!(err.contains("must be longer than --heartbeat"), "{err}");
    assert!(
        s.storage().study_by_name("p").is_err(),
        "nothing was created"
    );

    // A stored scheduler wins; another one is an error that names it.
    let created = s
        .ferrotune(
            "run",
            "stored",
            &minimizing(
                "2",
                &[
                    "--scheduler",
                    "asha",
                    "--max-resource",
                    "9",
                    "--create-only",
                ],
                &["python3", "train.py"],
            ),
        )
        .output()
        .unwrap();
    ok(&created);
    let err = refused(&run(
        "stored",
        &["--scheduler", "sha", "--max-resource", "9"],
    ));
    assert!(
        err.contains(
            r#"runs the scheduler {"type":"asha","min_resource":1,"max_resource":9,"eta":3}"#
        ),
        "{err}"
    );
    let err = refused(&run("stored", &["--pruner", "median"]));
    assert!(err.contains("cannot be combined with a scheduler"), "{err}");
    let worker = s
        .ferrotune(
            "worker",
            "stored",
            &["--scheduler", "asha", "--max-resource", "27"],
        )
        .output()
        .unwrap();
    let err = refused(&worker);
    assert!(err.contains("runs the scheduler"), "{err}");
    let stored = s.storage().study_by_name("stored").unwrap();
    let dir = stored.system_attrs["ferrotune:config"]["checkpoints"]["dir"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(Path::new(&dir), s.path("ferrotune-checkpoints"));
}

#[test]
fn the_pause_resume_example_runs() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/pause-resume");
    let s = Scratch::new("schedule", "example");
    let out = Command::new("sh")
        .arg(example.join("run.sh"))
        .arg(s.path("out"))
        .env("FERROTUNE", BIN)
        .output()
        .unwrap();
    let err = ok(&out);
    let url = format!("sqlite:///{}", s.path("out/studies.db").display());
    let storage = ferrotune_sqlite::SqliteStorage::open_existing(&url).unwrap();
    use ferrotune::Storage;
    let trials = |name: &str| {
        let id = storage.study_by_name(name).unwrap().id;
        storage.trials(id, None).unwrap()
    };
    let asha = trials("sgd-asha");
    assert_eq!(asha.len(), 30);
    // 30 configurations with η = 3 fill rungs of 30, 10, 3 and 1: at least one completes
    // however the asynchronous promotions interleave (with 20 the last rung may stay empty).
    assert!(count(&asha, TrialState::Complete) >= 1, "{err}");
    assert!(count(&asha, TrialState::Paused) >= 10, "{err}");
    let pbt = trials("sgd-pbt");
    assert_eq!(count(&pbt, TrialState::Complete), 4, "{err}");
    assert!(
        pbt.iter().any(|t| t.system_attrs.contains_key(PARENT_ATTR)),
        "{err}"
    );
    for t in asha.iter().chain(&pbt) {
        assert_ne!(t.state, TrialState::Fail, "{err}");
    }
    assert_contiguous(&asha);
    assert_contiguous(&pbt);
    // `ferrotune lineage` shows the best PBT model's schedule, first member first: every link
    // but the first continues the previous link's trial.
    let out = Command::new(BIN)
        .args(["lineage", "--study", "sgd-pbt", "--storage", &url])
        .output()
        .unwrap();
    ok(&out);
    let shown = String::from_utf8_lossy(&out.stdout);
    let numbers: Vec<u64> = shown
        .lines()
        .skip_while(|l| !l.starts_with("trial  "))
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert!(!numbers.is_empty(), "{shown}");
    for pair in numbers.windows(2) {
        let child = pbt.iter().find(|t| t.number == pair[1]).unwrap();
        assert_eq!(
            child.system_attrs[PARENT_ATTR].as_u64(),
            Some(pair[0]),
            "{shown}"
        );
    }
}
