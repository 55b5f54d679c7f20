//! Pause and resume from the Rust API: Population Based Training on the toy problem of
//! Jaderberg et al. (2017, section 4.1), then ASHA with promotion on the same training loop.
//!
//! The model is `θ ∈ R²`, trained by gradient ascent (learning rate 0.01) on the surrogate
//! `1.2 − (h₀θ₀² + h₁θ₁²)`, whose hyperparameters `h` are tuned; the score is the true
//! objective `Q(θ) = 1.2 − (θ₀² + θ₁²)`, maximized. The checkpoint is `θ`.
//!
//! Run with `cargo run -p ferrotune --example population`.

use ferrotune::schedule::SchedulerSpec;
use ferrotune::{Direction, Optimize, SamplerSpec, Study, Trial, TrialError};

/// One member's training: resume `θ` from the checkpoint when there is one, then train and
/// report every step; the scheduler decides when a checkpoint is saved.
fn train(trial: &mut Trial<'_>, max_step: u64) -> Result<f64, TrialError> {
    let h = [
        trial.suggest_float("h0", 0.0, 1.0)?,
        trial.suggest_float("h1", 0.0, 1.0)?,
    ];
    let mut theta: [f64; 2] = match trial.resume_from() {
        Some(checkpoint) => {
            let bytes = checkpoint.read_bytes()?;
            serde_json::from_slice(&bytes)?
        }
        None => [0.9, 0.9],
    };
    let mut q = f64::NAN;
    for step in trial.first_step()..=max_step {
        for (t, h) in theta.iter_mut().zip(h) {
            *t -= 0.01 * 2.0 * h * *t;
        }
        q = 1.2 - (theta[0].powi(2) + theta[1].powi(2));
        let state = serde_json::to_vec(&theta)?;
        trial.report_scheduled(step, q, |w| w.write_bytes(&state))?;
    }
    Ok(q)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let checkpoints =
        std::env::temp_dir().join(format!("ferrotune-example-{}", std::process::id()));

    let pbt = Study::builder()
        .name("toy-pbt")
        .direction(Direction::Maximize)
        .sampler(SamplerSpec::Random)
        .scheduler(SchedulerSpec::Pbt {
            population_size: 8,
            interval: 4,
            max_step: 60,
            config: Default::default(),
        })
        .checkpoint_dir(&checkpoints)
        .seed(1)
        .build()?;
    pbt.optimize(
        |t: &mut Trial<'_>| train(t, 60),
        Optimize::unbounded().jobs(4),
    )?;
    let best = pbt.best_trial()?;
    println!(
        "PBT: best Q = {:.4} after {} trials (8 members, each exploit starts a new trial)",
        best.value().unwrap_or(f64::NAN),
        pbt.trials()?.len()
    );
    println!("its schedule of hyperparameters, from the first member on:");
    for (trial, from) in pbt.lineage(best.number)?.iter().rev() {
        println!(
            "  trial {:>3} from step {:>2}: h0 = {:.3}, h1 = {:.3}",
            trial.number,
            from.map_or(0, |s| s),
            trial.params["h0"].as_f64().unwrap_or(f64::NAN),
            trial.params["h1"].as_f64().unwrap_or(f64::NAN),
        );
    }

    let asha = Study::builder()
        .name("toy-asha")
        .direction(Direction::Maximize)
        .sampler(SamplerSpec::Random)
        .scheduler(SchedulerSpec::Asha {
            min_resource: 4,
            max_resource: 60,
            eta: 3,
        })
        .checkpoint_dir(&checkpoints)
        .seed(1)
        .build()?;
    asha.optimize(
        |t: &mut Trial<'_>| train(t, 60),
        Optimize::trials(30).jobs(4),
    )?;
    let steps: u64 = asha.trials()?.iter().filter_map(|t| t.last_step()).sum();
    println!(
        "ASHA with promotion: best Q = {:.4}; {steps} steps trained for 30 configurations \
         (without pausing: {})",
        asha.best_value()?,
        30 * 60
    );
    std::fs::remove_dir_all(&checkpoints)?;
    Ok(())
}
