//! SQLite storage throughput: ask + 10 suggested floats + 10 reported steps + tell, random
//! sampler, no pruner, on a fresh database file — `synchronous=normal` and `full`, from one
//! process and from 8 processes sharing the file.
//!
//! Run with `cargo bench -p ferrotune-sqlite --bench throughput [-- N]` (N trials per
//! configuration, default 1000). Prints one JSON line per configuration, in the format of
//! `crates/ferrotune/benches/overhead.rs`. Each trial is 22 write transactions (create, 10
//! params, 10 reports, state), so `full` measures the disk's fsync latency.

use ferrotune::{PrunerSpec, SamplerSpec, Study};
use ferrotune_sqlite::SqliteStorage;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

const STEPS: u64 = 10;
/// Ten float parameters, as in the peers' benchmark (`bench/peers/storage_throughput.py`).
const PARAM_NAMES: [&str; 10] = ["x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9"];
const PROCS: usize = 8;
const CHILD: &str = "FERROTUNE_SQLITE_BENCH_CHILD";

fn open_study(url: &str) -> ferrotune::Result<Study> {
    Study::builder()
        .name("bench")
        .storage(Arc::new(SqliteStorage::open(url)?))
        .sampler(SamplerSpec::Random)
        .pruner(PrunerSpec::Nop)
        .seed(0)
        .load_if_exists(true)
        .build()
}

/// Runs `n` trials; returns each one's duration in seconds.
fn run_trials(study: &Study, n: usize) -> ferrotune::Result<Vec<f64>> {
    let mut per_trial = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        let mut trial = study.ask()?;
        let mut value = 0.0;
        for name in PARAM_NAMES {
            let x = trial.suggest_float(name, -5.0, 5.0)?;
            value += x * x;
        }
        for step in 0..STEPS {
            value *= 0.9;
            trial.report(step, value)?;
        }
        study.tell(trial, value)?;
        per_trial.push(t0.elapsed().as_secs_f64());
    }
    Ok(per_trial)
}

fn temp_db(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ferrotune-sqlite-bench-{}-{tag}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir.join("bench.db")
}

fn one_process(n: usize, sync: &str) -> ferrotune::Result<()> {
    let path = temp_db(sync);
    let url = format!("sqlite:///{}?synchronous={sync}", path.display());
    let study = open_study(&url)?;
    let window = (n / 10).max(1);
    let start = Instant::now();
    let per_trial = run_trials(&study, n)?;
    let wall = start.elapsed().as_secs_f64();
    // Reading the whole history, as a pruner or a model-based sampler does: the first read
    // (cold cache), a read after one more trial (incremental), and a read with nothing new.
    let t0 = Instant::now();
    let all = study.trials()?;
    let cold_read = t0.elapsed().as_secs_f64();
    assert_eq!(all.len(), n);
    run_trials(&study, 1)?;
    let t0 = Instant::now();
    study.trials()?;
    let incremental_read = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    study.trials()?;
    let unchanged_read = t0.elapsed().as_secs_f64();
    let mean_us = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64 * 1e6;
    println!(
        "{{\"peer\": \"ferrotune\", \"version\": \"{}\", \"sampler\": \"random\", \"storage\": \"sqlite\", \"synchronous\": \"{sync}\", \"processes\": 1, \"trials\": {n}, \"params\": {}, \"steps\": {STEPS}, \"wall_s\": {wall:.6}, \"trials_per_s\": {:.1}, \"us_per_trial_first\": {:.1}, \"us_per_trial_last\": {:.1}, \"us_read_cold\": {:.1}, \"us_read_after_one_trial\": {:.1}, \"us_read_unchanged\": {:.1}}}",
        env!("CARGO_PKG_VERSION"),
        PARAM_NAMES.len(),
        n as f64 / wall,
        mean_us(&per_trial[..window]),
        mean_us(&per_trial[n - window..]),
        cold_read * 1e6,
        incremental_read * 1e6,
        unchanged_read * 1e6,
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap_or(&path));
    Ok(())
}

fn many_processes(n: usize, sync: &str) -> ferrotune::Result<()> {
    let path = temp_db(&format!("{sync}-procs"));
    let url = format!("sqlite:///{}?synchronous={sync}", path.display());
    open_study(&url)?; // create it, so the workers only load it
    let exe = std::env::current_exe().map_err(|e| ferrotune::Error::Storage(e.to_string()))?;
    let per_child = n / PROCS;
    let start = Instant::now();
    let children: Vec<_> = (0..PROCS)
        .map(|_| {
            Command::new(&exe)
                .env(CHILD, format!("{per_child} {url}"))
                .spawn()
                .map_err(|e| ferrotune::Error::Storage(e.to_string()))
        })
        .collect::<ferrotune::Result<_>>()?;
    for mut c in children {
        let status = c
            .wait()
            .map_err(|e| ferrotune::Error::Storage(e.to_string()))?;
        assert!(status.success(), "a bench worker failed");
    }
    let wall = start.elapsed().as_secs_f64();
    let total = per_child * PROCS;
    let study = open_study(&url)?;
    assert_eq!(study.trials()?.len(), total);
    println!(
        "{{\"peer\": \"ferrotune\", \"version\": \"{}\", \"sampler\": \"random\", \"storage\": \"sqlite\", \"synchronous\": \"{sync}\", \"processes\": {PROCS}, \"trials\": {total}, \"params\": {}, \"steps\": {STEPS}, \"wall_s\": {wall:.6}, \"trials_per_s\": {:.1}}}",
        env!("CARGO_PKG_VERSION"),
        PARAM_NAMES.len(),
        total as f64 / wall,
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap_or(&path));
    Ok(())
}

fn main() -> ferrotune::Result<()> {
    if let Ok(job) = std::env::var(CHILD) {
        let (n, url) = job.split_once(' ').expect("child job: `N URL`");
        let study = open_study(url)?;
        run_trials(&study, n.parse().expect("trial count"))?;
        return Ok(());
    }
    let n = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(1000)
        .max(PROCS);
    for sync in ["normal", "full"] {
        one_process(n, sync)?;
        many_processes(n, sync)?;
    }
    Ok(())
}
