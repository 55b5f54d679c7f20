//! The cost of pause-and-resume scheduling itself: ASHA with promotion (R = 27, η = 3) over
//! an instant "training" loop that reports every step and saves a one-byte checkpoint at
//! every pause, on in-memory storage, one thread. Every scheduler call reads the stored
//! state, applies one operation and writes it back by compare-and-set, so the cost per trial
//! grows with the state (the trials the scheduler knows).
//!
//! Also the stopping variant (the successive-halving pruner), whose peer is Ray Tune's
//! `ASHAScheduler`: `bench/peers/ray_asha_overhead.py` runs the same loop there.
//!
//! Run with `cargo bench -p ferrotune --bench scheduler_overhead [-- N N …]` (default 300
//! 1000 3000 configurations). Prints one JSON line per size and variant.

use ferrotune::schedule::SchedulerSpec;
use ferrotune::{Optimize, SamplerSpec, Study, Trial, TrialError};
use std::time::Instant;

const MAX_STEP: u64 = 27;

fn run(n: u64) -> ferrotune::Result<()> {
    let dir = std::env::temp_dir().join(format!("ferrotune-bench-sched-{}", std::process::id()));
    let study = Study::builder()
        .sampler(SamplerSpec::Random)
        .scheduler(SchedulerSpec::Asha {
            min_resource: 1,
            max_resource: MAX_STEP,
            eta: 3,
        })
        .checkpoint_dir(&dir)
        .seed(1)
        .build()?;
    let start = Instant::now();
    study.optimize(
        |t: &mut Trial<'_>| -> Result<f64, TrialError> {
            let x = t.suggest_float("x", 0.0, 1.0)?;
            let mut value = f64::NAN;
            for step in t.first_step()..=MAX_STEP {
                value = x + 1.0 / step as f64;
                t.report_scheduled(step, value, |w| w.write_bytes(b"x"))?;
            }
            Ok(value)
        },
        Optimize::trials(n),
    )?;
    print_line("asha_promotion", &study, n, start)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The stopping variant (the successive-halving pruner: rungs at 1, 3, 9, 27, nothing paused
/// or saved), as Ray Tune's `ASHAScheduler` does it.
fn run_stopping(n: u64) -> ferrotune::Result<()> {
    let study = Study::builder()
        .sampler(SamplerSpec::Random)
        .pruner(ferrotune::PrunerSpec::SuccessiveHalving {
            min_resource: ferrotune::pruner::Resource::Steps(1),
            reduction_factor: 3,
            min_early_stopping_rate: 0,
            bootstrap_count: 0,
        })
        .seed(1)
        .build()?;
    let start = Instant::now();
    study.optimize(
        |t: &mut Trial<'_>| -> Result<f64, TrialError> {
            let x = t.suggest_float("x", 0.0, 1.0)?;
            let mut value = f64::NAN;
            for step in 1..=MAX_STEP {
                value = x + 1.0 / step as f64;
                t.report(step, value)?;
                if step < MAX_STEP && t.should_prune()? {
                    return Err(TrialError::Pruned);
                }
            }
            Ok(value)
        },
        Optimize::trials(n),
    )?;
    print_line("asha_stopping", &study, n, start)
}

/// One JSON line: the time since `start` per configuration and per step trained.
fn print_line(bench: &str, study: &Study, n: u64, start: Instant) -> ferrotune::Result<()> {
    let seconds = start.elapsed().as_secs_f64();
    let steps: u64 = study.trials()?.iter().filter_map(|t| t.last_step()).sum();
    println!(
        "{{\"bench\":\"{bench}\",\"configurations\":{n},\"steps\":{steps},\"seconds\":{seconds:.3},\"ms_per_configuration\":{:.3},\"us_per_step\":{:.1}}}",
        1e3 * seconds / n as f64,
        1e6 * seconds / steps.max(1) as f64
    );
    Ok(())
}

fn main() -> ferrotune::Result<()> {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![300, 1000, 3000]
    } else {
        sizes
    };
    for n in sizes {
        run(n)?;
        run_stopping(n)?;
    }
    Ok(())
}
