//! Many real OS processes sharing one SQLite file through the `Study` API.
//!
//! The test binary re-runs itself as the workers (`child_process`, selected by an environment
//! variable), so each worker is an ordinary program calling `Study::optimize`; the parent
//! checks the database afterwards. Meanwhile the parent reads the study over and over through
//! one storage, whose incremental cache must end up exactly equal to a fresh read.

mod common;

use ferrotune::{
    Direction, FrozenTrial, Heartbeat, Optimize, ParamValue, PrunerSpec, RetryPolicy, SamplerSpec,
    Storage, Study, Trial, TrialError, TrialState,
};
use ferrotune_sqlite::SqliteStorage;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD: &str = "FERROTUNE_SQLITE_MULTIPROCESS_CHILD";
const WORKERS: usize = 8;
const TRIALS_PER_WORKER: u64 = 200;
const STEPS: u64 = 5;
const GRID_X: i64 = 12;
const GRID_Y: i64 = 10;
const CAP: u64 = 50;

fn storage(url: &str) -> Arc<SqliteStorage> {
    Arc::new(SqliteStorage::open(url).expect("open storage"))
}

fn race_study(url: &str) -> Study {
    Study::builder()
        .name("race")
        .storage(storage(url))
        .sampler(SamplerSpec::Random)
        .pruner(PrunerSpec::Nop)
        .seed(7)
        .load_if_exists(true)
        .build()
        .expect("study")
}

fn grid() -> BTreeMap<String, Vec<ParamValue>> {
    let mut g = BTreeMap::new();
    g.insert("x".to_owned(), (0..GRID_X).map(ParamValue::Int).collect());
    g.insert("y".to_owned(), (0..GRID_Y).map(ParamValue::Int).collect());
    g
}

fn grid_study(url: &str) -> Study {
    Study::builder()
        .name("grid")
        .storage(storage(url))
        .sampler(SamplerSpec::Grid { grid: grid() })
        .pruner(PrunerSpec::Nop)
        .seed(3)
        .load_if_exists(true)
        .build()
        .expect("study")
}

fn capped_study(url: &str) -> Study {
    Study::builder()
        .name("capped")
        .storage(storage(url))
        .sampler(SamplerSpec::Random)
        .pruner(PrunerSpec::Nop)
        .seed(5)
        .max_trials(CAP)
        .load_if_exists(true)
        .build()
        .expect("study")
}

fn heartbeat_study(url: &str) -> Study {
    Study::builder()
        .name("beats")
        .storage(storage(url))
        .sampler(SamplerSpec::Random)
        .pruner(PrunerSpec::Nop)
        .seed(9)
        .heartbeat(
            Heartbeat::every(Duration::from_millis(100)).grace_period(Duration::from_millis(1500)),
        )
        .retry(RetryPolicy::stale(1))
        .load_if_exists(true)
        .build()
        .expect("study")
}

/// The worker: runs one scenario against the study at the URL, then prints
/// `RESULT finished=<trials this process finished>`.
#[test]
fn child_process() {
    let Ok(job) = std::env::var(CHILD) else {
        return;
    };
    let (scenario, url) = job.split_once(' ').expect("`SCENARIO URL`");
    let finished = Arc::new(AtomicU64::new(0));
    let count = {
        let finished = finished.clone();
        move |_: &Study, _: &FrozenTrial| {
            finished.fetch_add(1, Ordering::SeqCst);
        }
    };
    match scenario {
        "race" => {
            let study = race_study(url);
            study
                .optimize(
                    |t: &mut Trial| -> Result<f64, TrialError> {
                        let x = t.suggest_float("x", 0.0, 1.0)?;
                        for step in 0..STEPS {
                            t.report(step, x + step as f64)?;
                        }
                        t.set_user_attr("pid", std::process::id())?;
                        if t.number().is_multiple_of(16) {
                            // Read the history while the other workers write it.
                            let seen = t.study().trials()?;
                            let me = seen
                                .iter()
                                .find(|s| s.number == t.number())
                                .expect("own trial visible");
                            assert_eq!(me.intermediate_values.len() as u64, STEPS);
                            assert_eq!(me.state, TrialState::Running);
                        }
                        Ok(x)
                    },
                    Optimize::trials(TRIALS_PER_WORKER).callback(count),
                )
                .expect("optimize");
            // Everything this process finished is in its (incrementally read) view.
            let mine: Vec<_> = study
                .trials()
                .expect("trials")
                .into_iter()
                .filter(|t| t.user_attrs.get("pid") == Some(&std::process::id().into()))
                .collect();
            assert_eq!(mine.len() as u64, TRIALS_PER_WORKER);
            assert!(mine.iter().all(|t| t.state == TrialState::Complete));
        }
        "grid" => {
            grid_study(url)
                .optimize(
                    |t: &mut Trial| -> Result<f64, TrialError> {
                        let x = t.suggest_int("x", 0, GRID_X - 1)?;
                        let y = t.suggest_int("y", 0, GRID_Y - 1)?;
                        Ok((x * GRID_Y + y) as f64)
                    },
                    Optimize::unbounded().callback(count),
                )
                .expect("optimize");
        }
        "capped" => {
            capped_study(url)
                .optimize(
                    |t: &mut Trial| -> Result<f64, TrialError> {
                        std::thread::sleep(Duration::from_millis(2));
                        Ok(t.suggest_float("x", 0.0, 1.0)?)
                    },
                    Optimize::trials(1000).callback(count),
                )
                .expect("optimize");
        }
        "hang" => {
            // Starts a trial with heartbeats and hangs in it until killed.
            heartbeat_study(url)
                .optimize(
                    |t: &mut Trial| -> Result<f64, TrialError> {
                        t.suggest_float("x", 0.0, 1.0)?;
                        println!("RESULT started={}", t.number());
                        std::thread::sleep(Duration::from_secs(600));
                        Ok(0.0)
                    },
                    Optimize::trials(1),
                )
                .expect("optimize");
        }
        other => panic!("unknown scenario {other}"),
    }
    println!("RESULT finished={}", finished.load(Ordering::SeqCst));
}

fn spawn(scenario: &str, url: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, format!("{scenario} {url}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn worker")
}

/// Waits for a worker; returns the number of trials it finished.
fn finished(child: Child) -> u64 {
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "worker failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split("RESULT finished=").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no result in {stdout}"))
}

/// Runs `WORKERS` workers on one scenario. While they run, reads the study through one
/// storage again and again (checking that finished trials never change and numbers stay
/// dense); returns the workers' finished counts and that storage.
fn run_workers(scenario: &str, url: &str, study: &str) -> (Vec<u64>, Arc<SqliteStorage>) {
    let reader = storage(url);
    let mut children: Vec<Child> = (0..WORKERS).map(|_| spawn(scenario, url)).collect();
    let mut seen: HashMap<u64, Arc<FrozenTrial>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut reads = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        let running = children
            .iter_mut()
            .map(|c| matches!(c.try_wait(), Ok(None)))
            .filter(|&r| r)
            .count();
        if running == 0 {
            break;
        }
        let Ok(s) = reader.study_by_name(study) else {
            continue;
        };
        let trials = reader.trials(s.id, None).expect("read while workers write");
        reads += 1;
        for (i, t) in trials.iter().enumerate() {
            assert_eq!(t.number, i as u64, "numbers dense in every snapshot");
            if let Some(before) = seen.get(&t.number) {
                if before.state.is_finished() {
                    assert_eq!(**before, **t, "a finished trial changed");
                }
            }
            seen.insert(t.number, t.clone());
        }
    }
    let counts = children.into_iter().map(finished).collect();
    eprintln!(
        "{scenario}: {reads} reads while the workers ran, {} trial records loaded",
        reader.trials_loaded()
    );
    (counts, reader)
}

/// The reader's incrementally maintained view equals a fresh storage's full read.
fn assert_cache_exact(reader: &SqliteStorage, url: &str, study: &str) -> Vec<Arc<FrozenTrial>> {
    let id = reader.study_by_name(study).expect("study").id;
    let cached = reader.trials(id, None).expect("cached read");
    let fresh = storage(url).trials(id, None).expect("fresh read");
    assert_eq!(cached.len(), fresh.len());
    for (a, b) in cached.iter().zip(&fresh) {
        assert_eq!(
            **a, **b,
            "the cache differs from the database for trial #{}",
            a.number
        );
    }
    fresh
}

#[test]
fn eight_processes_optimize_one_study_without_losing_or_duplicating() {
    let dir = common::TempDir::new("race");
    let url = dir.url("race.db");
    let start = Instant::now();
    let (counts, reader) = run_workers("race", &url, "race");
    let total = TRIALS_PER_WORKER * WORKERS as u64;
    assert_eq!(
        counts,
        vec![TRIALS_PER_WORKER; WORKERS],
        "each worker finished its trials once"
    );
    let trials = assert_cache_exact(&reader, &url, "race");
    let numbers: Vec<u64> = trials.iter().map(|t| t.number).collect();
    assert_eq!(
        numbers,
        (0..total).collect::<Vec<_>>(),
        "every number exactly once"
    );
    let mut per_pid: HashMap<String, u64> = HashMap::new();
    for t in &trials {
        assert_eq!(t.state, TrialState::Complete, "trial #{}", t.number);
        let Some(ParamValue::Float(x)) = t.params.get("x") else {
            panic!("trial #{} has no x", t.number)
        };
        assert_eq!(t.values.as_deref(), Some(&[*x][..]));
        let steps: Vec<u64> = t.intermediate_values.keys().copied().collect();
        assert_eq!(steps, (0..STEPS).collect::<Vec<_>>(), "trial #{}", t.number);
        for (step, v) in &t.intermediate_values {
            assert_eq!(v, &vec![x + *step as f64]);
        }
        *per_pid.entry(t.user_attrs["pid"].to_string()).or_default() += 1;
    }
    assert_eq!(per_pid.len(), WORKERS);
    assert!(
        per_pid.values().all(|&n| n == TRIALS_PER_WORKER),
        "{per_pid:?}"
    );
    let id = reader.study_by_name("race").expect("study").id;
    assert_eq!(
        reader
            .n_trials(id, Some(&[TrialState::Complete]))
            .expect("count"),
        total
    );
    eprintln!(
        "{total} trials from {WORKERS} processes in {:?}",
        start.elapsed()
    );
}

#[test]
fn eight_processes_share_one_grid_without_repeating_a_point() {
    let dir = common::TempDir::new("grid");
    let url = dir.url("grid.db");
    grid_study(&url); // created once, so every worker loads the same configuration
    let (counts, reader) = run_workers("grid", &url, "grid");
    let trials = assert_cache_exact(&reader, &url, "grid");
    let complete: Vec<_> = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .collect();
    let points: HashSet<(i64, i64)> = complete
        .iter()
        .map(|t| match (t.params.get("x"), t.params.get("y")) {
            (Some(ParamValue::Int(x)), Some(ParamValue::Int(y))) => (*x, *y),
            other => panic!("trial #{} has {other:?}", t.number),
        })
        .collect();
    let n = (GRID_X * GRID_Y) as usize;
    assert_eq!(complete.len(), n, "every point evaluated once");
    assert_eq!(points.len(), n, "no point evaluated twice");
    // Only trials started while the last points were handed out may fail (grid used up).
    for t in trials.iter().filter(|t| t.state != TrialState::Complete) {
        assert_eq!(t.state, TrialState::Fail, "trial #{}", t.number);
        assert!(t.params.is_empty());
    }
    // Workers count the trials they finished (a trial that found the grid used up fails in
    // `ask`, before the objective runs).
    assert_eq!(counts.iter().sum::<u64>() as usize, complete.len());
}

#[test]
fn eight_processes_stop_at_exactly_max_trials() {
    let dir = common::TempDir::new("capped");
    let url = dir.url("capped.db");
    capped_study(&url);
    let (counts, reader) = run_workers("capped", &url, "capped");
    let trials = assert_cache_exact(&reader, &url, "capped");
    assert_eq!(trials.len() as u64, CAP, "exactly max_trials trials");
    assert!(trials.iter().all(|t| t.state == TrialState::Complete));
    assert_eq!(counts.iter().sum::<u64>(), CAP);
}

/// Kills the hanging worker even when the test fails before it does.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn a_killed_workers_trial_is_reaped_by_the_database_clock() {
    let dir = common::TempDir::new("beats");
    let url = dir.url("beats.db");
    let study = heartbeat_study(&url);
    let mut child = spawn("hang", &url);
    let _reap = KillOnDrop(child.id());
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    // (libtest prints `test child_process ... ` before the child's own output.)
    while !line.contains("RESULT started=") {
        line.clear();
        assert!(
            out.read_line(&mut line).expect("read") > 0,
            "worker ended early"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    // Alive: its heartbeats keep it fresh.
    assert!(study.fail_stale_trials().expect("reap").is_empty());
    child.kill().expect("kill");
    child.wait().expect("wait");
    std::thread::sleep(Duration::from_millis(2000));
    // Another worker: reaps the dead worker's trial as it asks for work, then runs the
    // retry the reaping enqueued, with the same parameters.
    study
        .optimize(
            |t: &mut Trial| -> Result<f64, TrialError> { Ok(t.suggest_float("x", 0.0, 1.0)?) },
            Optimize::trials(1),
        )
        .expect("optimize");
    let t = study.trials().expect("trials");
    assert_eq!(t.len(), 2, "the dead trial and its retry");
    assert_eq!(t[0].state, TrialState::Fail);
    assert!(
        t[0].fail_reason
            .as_deref()
            .is_some_and(|r| r.contains("heartbeat")),
        "{:?}",
        t[0].fail_reason
    );
    assert_eq!(t[1].state, TrialState::Complete);
    assert_eq!(
        t[1].params["x"], t[0].params["x"],
        "the retry reuses the parameters"
    );
    assert_eq!(
        t[1].system_attrs.get(ferrotune::study::FAILED_TRIAL_ATTR),
        Some(&serde_json::json!(0))
    );
    assert!(study.fail_stale_trials().expect("reap").is_empty());
    assert_eq!(study.directions(), &[Direction::Minimize]);
}
