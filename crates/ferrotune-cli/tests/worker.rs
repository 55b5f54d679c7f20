//! `ferrotune worker` and `ferrotune launch`, as a user runs them: a study stored by
//! `ferrotune run --create-only`, then several worker processes on it (SQLite, and PostgreSQL
//! when `FERROTUNE_TEST_POSTGRES_URL` names a server: scripts/test.sh starts one), and a
//! generated Slurm script run with a stand-in for `srun`.

#![cfg(unix)]

use ferrotune::{FrozenTrial, Storage, TrialState};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{minimizing, Scratch, BIN};

/// The variable holding the test server's URL (scripts/test.sh sets it).
const PG_URL_VAR: &str = "FERROTUNE_TEST_POSTGRES_URL";
const WORKERS: usize = 4;
const TRIALS: u64 = 24;

/// One trial: appends "<trial number> <worker>" to the shared log, waits (up to a minute)
/// until every worker of the test has run a trial, so each of them gets work whatever the
/// order they start in, and reports the parameter as its value.
const TRIAL_SH: &str = r#"
echo "$FERROTUNE_TRIAL_NUMBER $TEST_WORKER ${CUDA_VISIBLE_DEVICES:-none}" >> "$TRIAL_LOG"
i=0
while [ "$(cut -d' ' -f2 "$TRIAL_LOG" | sort -u | wc -l)" -lt "$TEST_WORKERS" ] && [ $i -lt 1200 ]; do
  sleep 0.05
  i=$((i + 1))
done
echo "ferrotune: value=$1"
"#;

const SPACE: &str = "[params.x]\ntype = \"float\"\nlow = 0.0\nhigh = 1.0\n";

/// A fresh directory with the trial script and the space.
fn scratch(name: &str) -> Scratch {
    let s = Scratch::new("worker", name);
    s.write("trial.sh", TRIAL_SH);
    s.write("space.toml", SPACE);
    s
}

impl Scratch {
    /// `ferrotune ARGS` in this directory, with the storage URL in FERROTUNE_STORAGE (as a
    /// password-holding URL should be given).
    fn ferrotune(&self, url: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(&self.dir)
            .env("FERROTUNE_STORAGE", url)
            .env("TRIAL_LOG", self.path("trials.log"))
            .env("TEST_WORKERS", WORKERS.to_string())
            .env("TEST_WORKER", "creator")
            .args(args);
        cmd
    }

    /// `ferrotune run --create-only`: the study with its budget, and no trial run.
    fn create(&self, url: &str, study: &str) -> Output {
        let script = self.path("trial.sh").display().to_string();
        let trials = TRIALS.to_string();
        let mut args = vec!["run", "--study", study];
        args.extend(minimizing(
            &trials,
            &["--create-only"],
            &["sh", &script, "{x}"],
        ));
        let out = self
            .ferrotune(url, &args)
            .output()
            .expect("run ferrotune run --create-only");
        assert!(out.status.success(), "{}", text(&out));
        out
    }

    /// The log lines: trial number → the workers that ran it (with their GPUs).
    fn trial_log(&self) -> BTreeMap<u64, Vec<(String, String)>> {
        let log = std::fs::read_to_string(self.path("trials.log")).unwrap_or_default();
        let mut runs: BTreeMap<u64, Vec<(String, String)>> = BTreeMap::new();
        for line in log.lines() {
            let mut words = line.split(' ');
            let number = words.next().and_then(|n| n.parse().ok());
            let (Some(number), Some(worker), Some(gpus)) = (number, words.next(), words.next())
            else {
                panic!("bad log line {line:?}");
            };
            runs.entry(number)
                .or_default()
                .push((worker.to_owned(), gpus.to_owned()));
        }
        runs
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits for every child, killing them all if they take longer than `limit`.
fn wait_all(children: Vec<Child>, limit: Duration) -> Vec<Output> {
    let deadline = Instant::now() + limit;
    let mut children: Vec<Option<Child>> = children.into_iter().map(Some).collect();
    loop {
        let running = children
            .iter_mut()
            .flatten()
            .filter_map(|c| c.try_wait().ok())
            .filter(Option::is_none)
            .count();
        if running == 0 {
            break;
        }
        if Instant::now() > deadline {
            for c in children.iter_mut().flatten() {
                let _ = c.kill();
            }
            let outputs: Vec<String> = children
                .iter_mut()
                .filter_map(Option::take)
                .filter_map(|c| c.wait_with_output().ok())
                .map(|o| text(&o))
                .collect();
            panic!(
                "the workers did not finish in {limit:?}:\n{}",
                outputs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    children
        .iter_mut()
        .filter_map(Option::take)
        .map(|c| c.wait_with_output().expect("a worker's output"))
        .collect()
}

/// Four workers on one stored study run exactly its budget between them: each trial once,
/// and each worker some.
fn four_workers_finish_the_study(s: &Scratch, url: &str, study: &str, storage: &dyn Storage) {
    let created = s.create(url, study);
    let note = String::from_utf8_lossy(&created.stderr);
    assert!(note.contains("ferrotune worker --study"), "{note}");
    let id = storage.study_by_name(study).expect("the stored study").id;
    assert!(
        storage.trials(id, None).expect("trials").is_empty(),
        "--create-only runs no trial"
    );

    let children: Vec<Child> = (0..WORKERS)
        .map(|k| {
            let mut cmd = s.ferrotune(url, &["worker", "--study", study, "--quiet"]);
            if k == 0 {
                // Study flags that agree with the stored ones are accepted.
                cmd.args(["--trials", &TRIALS.to_string(), "--direction", "minimize"]);
            }
            cmd.env("TEST_WORKER", format!("w{k}"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a worker")
        })
        .collect();
    let outputs = wait_all(children, Duration::from_secs(180));
    for out in &outputs {
        assert!(out.status.success(), "{}", text(out));
    }

    let trials: Vec<Arc<FrozenTrial>> = storage.trials(id, None).expect("trials");
    assert_eq!(trials.len() as u64, TRIALS, "{trials:#?}");
    assert!(
        trials.iter().all(|t| t.state == TrialState::Complete),
        "{trials:#?}"
    );
    let numbers: BTreeSet<u64> = trials.iter().map(|t| t.number).collect();
    assert_eq!(numbers, (0..TRIALS).collect());

    let runs = s.trial_log();
    assert_eq!(
        runs.keys().copied().collect::<BTreeSet<_>>(),
        numbers,
        "every trial ran"
    );
    let mut per_worker: BTreeMap<String, usize> = BTreeMap::new();
    for (number, by) in &runs {
        assert_eq!(by.len(), 1, "trial {number} ran {} times: {by:?}", by.len());
        *per_worker.entry(by[0].0.clone()).or_default() += 1;
    }
    assert_eq!(
        per_worker.len(),
        WORKERS,
        "every worker ran trials: {per_worker:?}"
    );
    assert_eq!(per_worker.values().sum::<usize>() as u64, TRIALS);

    // A worker started after the end runs nothing and succeeds.
    let late = s
        .ferrotune(url, &["worker", "--study", study, "--quiet"])
        .output()
        .expect("run a late worker");
    assert!(late.status.success(), "{}", text(&late));
    assert_eq!(
        storage.trials(id, None).expect("trials").len() as u64,
        TRIALS
    );
}

#[test]
fn four_workers_share_a_sqlite_study() {
    let s = scratch("sqlite");
    let url = s.url.clone();
    let storage = ferrotune_sqlite::SqliteStorage::open(&url).expect("the database");
    four_workers_finish_the_study(&s, &url, "shared", &storage);
}

/// The PostgreSQL server's URL; `None` (after a notice) when there is none. Under CI a missing
/// URL fails the test.
fn postgres_url(test: &str) -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
            assert!(
                !ci,
                "{PG_URL_VAR} is not set but CI is: the PostgreSQL tests must run against a \
                 server in CI; run them through scripts/test.sh, which starts one"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "NOTICE: skipping {test}: set {PG_URL_VAR}=postgres://user:password@host:port/db \
                 or run scripts/test.sh, which starts a throwaway PostgreSQL"
            );
            None
        }
    }
}

/// Deletes the test's study from the server when the test ends, pass or fail.
struct DeleteStudy<'a> {
    storage: &'a dyn Storage,
    name: String,
}

impl Drop for DeleteStudy<'_> {
    fn drop(&mut self) {
        if let Ok(s) = self.storage.study_by_name(&self.name) {
            let _ = self.storage.delete_study(s.id);
        }
    }
}

#[test]
fn four_workers_share_a_postgres_study() {
    let Some(url) = postgres_url("four_workers_share_a_postgres_study") else {
        return;
    };
    let storage = ferrotune_postgres::PostgresStorage::connect(&url).expect("connect");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let study = format!("cli-workers-{}-{nanos}", std::process::id());
    let _cleanup = DeleteStudy {
        storage: &storage,
        name: study.clone(),
    };
    let s = scratch("postgres");
    four_workers_finish_the_study(&s, &url, &study, &storage);
}

#[test]
fn a_worker_needs_a_study_that_run_stored_and_never_changes_it() {
    let s = scratch("refusals");
    let url = s.url.clone();
    let run = |args: &[&str]| {
        let out = s.ferrotune(&url, args).output().expect("run ferrotune");
        (out.status.code(), text(&out))
    };

    // No database: an error, and no empty file left behind.
    let (code, out) = run(&["worker", "--study", "nope"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(!s.path("hpo.db").exists(), "{out}");

    s.create(&url, "stored");
    let (code, out) = run(&["worker", "--study", "nope"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("study `nope` does not exist")
            && out.contains("ferrotune run --study nope --storage URL --space FILE")
            && out.contains("--create-only -- PROGRAM ARGS"),
        "{out}"
    );

    // A study made by `ferrotune create` has no command.
    let (code, out) = run(&["create", "--study", "bare"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(&["worker", "--study", "bare"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("was not created by `ferrotune run`") && out.contains("--create-only"),
        "{out}"
    );
    assert!(
        !out.contains("--direction"),
        "the study stores its direction: {out}"
    );

    // Study flags that disagree name the stored value, and change nothing.
    let (code, out) = run(&["worker", "--study", "stored", "--trials", "30"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("study `stored` stores --trials 24, but this worker gives --trials 30"),
        "{out}"
    );
    let (code, out) = run(&["worker", "--study", "stored", "--retries", "2"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("stores --retries 0"), "{out}");
    let (code, out) = run(&["worker", "--study", "stored", "--", "sh", "other.sh"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("runs the command `sh "), "{out}");
    let (code, out) = run(&["worker", "--study", "stored", "--direction", "maximize"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("direction"), "{out}");

    let storage = s.storage();
    let id = storage.study_by_name("stored").expect("study").id;
    assert!(storage.trials(id, None).expect("trials").is_empty());
    let settings = storage
        .study_system_attr(id, "ferrotune:run")
        .expect("read")
        .expect("stored settings");
    assert_eq!(settings["trials"], 24, "{settings}");

    // `run --create-only` again changes the budget; the workers follow it.
    let (code, out) = run(&["run", "--study", "stored", "--trials", "2", "--create-only"]);
    assert_eq!(code, Some(0), "{out}");
    // One worker: its trials need not wait for others.
    let out = s
        .ferrotune(
            &url,
            &["worker", "--study", "stored", "--trials", "2", "--quiet"],
        )
        .env("TEST_WORKERS", "1")
        .output()
        .expect("run a worker");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(storage.trials(id, None).expect("trials").len(), 2);
}

/// A stand-in for `srun`: drops its own options and runs the command.
const FAKE_SRUN: &str = r#"#!/bin/sh
while [ $# -gt 0 ]; do
  case $1 in
    --*) shift ;;
    *) break ;;
  esac
done
exec "$@"
"#;

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write");
    let mut perms = std::fs::metadata(path).expect("metadata").permissions();
    perms.set_mode(0o755);
    std::fs::set_permissions(path, perms).expect("chmod");
}

#[test]
fn a_generated_slurm_script_runs_its_workers() {
    let s = scratch("slurm");
    let url = s.url.clone();
    s.create(&url, "My Study");
    let bin = s.path("bin");
    std::fs::create_dir_all(&bin).expect("bin directory");
    write_executable(&bin.join("srun"), FAKE_SRUN);

    let out = s
        .ferrotune(
            &url,
            &[
                "launch",
                "slurm",
                "--study",
                "My Study",
                "--storage",
                &url,
                "--workers",
                "2",
                "--gpus-per-task",
                "2",
                "--cpus-per-task",
                "2",
                "--time",
                "00:10:00",
                "--ferrotune",
                BIN,
                "--",
                "--quiet",
            ],
        )
        .output()
        .expect("run ferrotune launch slurm");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("POSIX locks"),
        "{}",
        text(&out)
    );
    let script = s.path("workers.sbatch");
    std::fs::write(&script, &out.stdout).expect("write the script");

    // Two array tasks, as Slurm would run them: the script with the task's GPUs set. The
    // variable the script exports is the one it sets, not the one inherited.
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let tasks: Vec<Child> = (0..2)
        .map(|k| {
            Command::new("bash")
                .arg(&script)
                .current_dir(&s.dir)
                .env("PATH", &path)
                .env_remove("FERROTUNE_STORAGE")
                .env("TRIAL_LOG", s.path("trials.log"))
                .env("TEST_WORKERS", "2")
                .env("TEST_WORKER", format!("task{k}"))
                .env("CUDA_VISIBLE_DEVICES", if k == 0 { "0,1" } else { "2,3" })
                .env("SLURM_ARRAY_TASK_ID", k.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run the sbatch script")
        })
        .collect();
    for out in wait_all(tasks, Duration::from_secs(180)) {
        assert!(out.status.success(), "{}", text(&out));
    }
    let runs = s.trial_log();
    assert_eq!(runs.len() as u64, TRIALS, "{runs:?}");
    for (number, by) in &runs {
        assert_eq!(by.len(), 1, "trial {number}: {by:?}");
        let (task, gpus) = &by[0];
        // One trial per GPU of its task.
        let allowed: &[&str] = if task == "task0" {
            &["0", "1"]
        } else {
            &["2", "3"]
        };
        assert!(
            allowed.contains(&gpus.as_str()),
            "trial {number}: {task} on {gpus}"
        );
    }
    let tasks: BTreeSet<&str> = runs.values().map(|by| by[0].0.as_str()).collect();
    assert_eq!(tasks.len(), 2, "{runs:?}");
}

#[test]
fn launch_k8s_refuses_to_print_a_password() {
    // `ferrotune ARGS` with a password-holding storage URL in FERROTUNE_STORAGE.
    let with_password = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("FERROTUNE_STORAGE", "postgres://bob:s3cret@db/hpo")
            .output()
            .expect("run ferrotune")
    };
    let launch = [
        "launch",
        "k8s",
        "--study",
        "s",
        "--workers",
        "3",
        "--image",
        "train:1",
    ];

    let out = with_password(&launch);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(!all.contains("s3cret"), "{all}");
    assert!(all.contains("kubectl create secret generic"), "{all}");

    let out = with_password(&[&launch[..], &["--secret", "hpo-db"]].concat());
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(!all.contains("s3cret"), "{all}");
    let job: yaml_serde::Value =
        yaml_serde::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{all}"));
    assert_eq!(job["spec"]["parallelism"].as_u64(), Some(3));

    // The help never shows the variable's value.
    let out = with_password(&["worker", "--help"]);
    assert!(!text(&out).contains("s3cret"), "{}", text(&out));
}
