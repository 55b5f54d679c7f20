//! Trial throughput on PostgreSQL: ask, 10 parameters, report 10 steps, tell — random
//! sampler, no pruner — in 1 process and in 8 processes sharing one study.
//!
//! Run with `FERROTUNE_TEST_POSTGRES_URL=postgres://… cargo bench -p ferrotune-postgres
//! --bench throughput [-- TRIALS_PER_PROCESS]` (default 500). Each run uses a fresh schema,
//! dropped afterwards. Prints one JSON line per configuration, like
//! `crates/ferrotune/benches/overhead.rs`.

use ferrotune::{PrunerSpec, SamplerSpec, Study};
use ferrotune_postgres::{PostgresOptions, PostgresStorage};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

const URL_VAR: &str = "FERROTUNE_TEST_POSTGRES_URL";
const CHILD: &str = "FERROTUNE_PG_BENCH_CHILD";
/// Ten float parameters, as in the peers' benchmark (`bench/peers/storage_throughput.py`).
const PARAMS: usize = 10;
const STEPS: u64 = 10;

fn study(url: &str, schema: &str) -> ferrotune::Result<Study> {
    let storage = PostgresStorage::connect_with(url, PostgresOptions::default().schema(schema))?;
    Study::builder()
        .name("bench")
        .storage(Arc::new(storage))
        .load_if_exists(true)
        .sampler(SamplerSpec::Random)
        .pruner(PrunerSpec::Nop)
        .seed(0)
        .build()
}

/// One worker's loop; returns the seconds it took.
fn work(study: &Study, n: u64) -> ferrotune::Result<f64> {
    let names: Vec<String> = (0..PARAMS).map(|i| format!("x{i}")).collect();
    let start = Instant::now();
    for _ in 0..n {
        let mut trial = study.ask()?;
        let mut value = 0.0;
        for name in &names {
            let x = trial.suggest_float(name, -5.0, 5.0)?;
            value += x * x;
        }
        for step in 0..STEPS {
            trial.report(step, value / (step + 1) as f64)?;
        }
        study.tell(trial, value)?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// The child: opens the study, says "ready", waits for a line on stdin, runs its trials.
fn child(url: &str, schema: &str, n: u64) -> ferrotune::Result<()> {
    let study = study(url, schema)?;
    println!("ready");
    std::io::stdout().flush().ok();
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).ok();
    let secs = work(&study, n)?;
    println!("done {secs}");
    Ok(())
}

fn report(processes: usize, trials: u64, wall: f64) {
    println!(
        "{{\"peer\": \"ferrotune\", \"version\": \"{}\", \"sampler\": \"random\", \"storage\": \"postgres\", \"processes\": {processes}, \"trials\": {trials}, \"params\": {PARAMS}, \"steps\": {STEPS}, \"wall_s\": {wall:.6}, \"trials_per_s\": {:.1}, \"ms_per_trial_per_process\": {:.3}}}",
        env!("CARGO_PKG_VERSION"),
        trials as f64 / wall,
        wall * 1e3 * processes as f64 / trials as f64,
    );
}

fn run(url: &str, processes: usize, per_process: u64) -> Result<(), String> {
    let schema = format!("ft_bench_{}_{processes}", std::process::id());
    let result = if processes == 1 {
        let study = study(url, &schema).map_err(|e| e.to_string())?;
        let wall = work(&study, per_process).map_err(|e| e.to_string())?;
        report(1, per_process, wall);
        Ok(())
    } else {
        run_children(url, &schema, processes, per_process)
    };
    if let Ok(mut c) = postgres::Client::connect(url, postgres::NoTls) {
        let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
    }
    result
}

fn run_children(url: &str, schema: &str, processes: usize, per_process: u64) -> Result<(), String> {
    // Create the tables and the study before the workers start.
    study(url, schema).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut children = Vec::new();
    for _ in 0..processes {
        let mut c = Command::new(&exe)
            .arg(per_process.to_string())
            .env(CHILD, schema)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut out = BufReader::new(c.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        out.read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim() != "ready" {
            return Err(format!("child did not start: {line}"));
        }
        children.push((c, out));
    }
    let start = Instant::now();
    for (c, _) in &mut children {
        if let Some(stdin) = c.stdin.as_mut() {
            writeln!(stdin, "go").map_err(|e| e.to_string())?;
        }
    }
    for (mut c, mut out) in children {
        let mut line = String::new();
        out.read_line(&mut line).map_err(|e| e.to_string())?;
        let status = c.wait().map_err(|e| e.to_string())?;
        if !status.success() || !line.starts_with("done") {
            return Err(format!("a worker failed ({status}): {line}"));
        }
    }
    let wall = start.elapsed().as_secs_f64();
    report(processes, per_process * processes as u64, wall);
    Ok(())
}

fn main() -> Result<(), String> {
    let Ok(url) = std::env::var(URL_VAR) else {
        eprintln!("set {URL_VAR}=postgres://user:password@host:port/db to run this benchmark");
        return Ok(());
    };
    let per_process = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<u64>().ok())
        .unwrap_or(500);
    if let Ok(schema) = std::env::var(CHILD) {
        return child(&url, &schema, per_process).map_err(|e| e.to_string());
    }
    run(&url, 1, per_process)?;
    run(&url, 8, per_process)?;
    Ok(())
}
