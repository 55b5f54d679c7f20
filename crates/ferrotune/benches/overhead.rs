//! Ask+tell overhead of the random sampler on in-memory storage: trials per second and the
//! per-trial cost early and late in a study (flat cost means the history is never walked).
//!
//! Run with `cargo bench -p ferrotune --bench overhead [-- N N …]` (default 1000 10000 100000).
//! The peer measurement is `bench/peers/optuna_overhead.py`, with the same
//! objective (10 floats in [-5, 5], sum of squares) and the same JSON line format.

use ferrotune::{PrunerSpec, SamplerSpec, Study};
use std::time::Instant;

const PARAMS: usize = 10;

fn run(n: usize) -> ferrotune::Result<()> {
    let names: Vec<String> = (0..PARAMS).map(|i| format!("x{i}")).collect();
    let study = Study::builder()
        .sampler(SamplerSpec::Random)
        .pruner(PrunerSpec::Nop)
        .seed(0)
        .build()?;
    let window = (n / 10).max(1);
    let mut per_trial = Vec::with_capacity(n);
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    for _ in 0..n {
        let t0 = Instant::now();
        let mut trial = study.ask()?;
        let mut value = 0.0;
        for name in &names {
            let x = trial.suggest_float(name, -5.0, 5.0)?;
            value += x * x;
        }
        study.tell(trial, value)?;
        per_trial.push(t0.elapsed().as_secs_f64());
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let mean_us = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64 * 1e6;
    println!(
        "{{\"peer\": \"ferrotune\", \"version\": \"{}\", \"sampler\": \"random\", \"storage\": \"inmemory\", \"trials\": {n}, \"params\": {PARAMS}, \"wall_s\": {wall:.6}, \"cpu_s\": {cpu:.6}, \"trials_per_s\": {:.1}, \"us_per_trial_first\": {:.3}, \"us_per_trial_last\": {:.3}}}",
        env!("CARGO_PKG_VERSION"),
        n as f64 / wall,
        mean_us(&per_trial[..window]),
        mean_us(&per_trial[n - window..]),
    );
    Ok(())
}

/// Process CPU time from /proc (Linux); 0 elsewhere.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> ferrotune::Result<()> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 100_000]
    } else {
        sizes
    };
    for n in sizes {
        run(n)?;
    }
    Ok(())
}
