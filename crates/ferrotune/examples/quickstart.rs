//! The API in one screen: a study, an objective with a conditional parameter, pruning on
//! intermediate values, and the best result. Run with `cargo run -p ferrotune --example quickstart`.

use ferrotune::{Direction, Optimize, PrunerSpec, SamplerSpec, Study, Trial, TrialError};

/// A stand-in for training: the "validation loss" after `epoch` epochs of a model whose
/// quality depends on its hyperparameters.
fn validation_loss(lr: f64, layers: i64, dropout: f64, epoch: u64) -> f64 {
    let quality = (lr.log10() + 2.5).powi(2) + 0.1 * (layers as f64 - 3.0).powi(2) + dropout;
    0.05 + quality * (1.0 + 2.0 / (epoch as f64 + 1.0))
}

fn objective(trial: &mut Trial) -> Result<f64, TrialError> {
    let lr = trial.suggest_float_log("lr", 1e-5, 1e-1)?;
    let layers = trial.suggest_int("layers", 1, 6)?;
    let regularize: bool = trial.suggest_categorical("regularize", &[true, false])?;
    let dropout = if regularize {
        trial.suggest_float("dropout", 0.0, 0.5)?
    } else {
        0.0
    };
    let mut loss = f64::INFINITY;
    for epoch in 0..20 {
        loss = validation_loss(lr, layers, dropout, epoch);
        trial.report(epoch, loss)?;
        if trial.should_prune()? {
            return Err(TrialError::Pruned);
        }
    }
    Ok(loss)
}

fn main() -> Result<(), ferrotune::Error> {
    let study = Study::builder()
        .name("quickstart")
        .direction(Direction::Minimize)
        .sampler(SamplerSpec::Random)
        .pruner(PrunerSpec::median())
        .seed(7)
        .build()?;
    study.optimize(objective, Optimize::trials(100))?;
    let best = study.best_trial()?;
    println!(
        "best loss {:.4} at trial {} with {}",
        best.value().unwrap_or(f64::NAN),
        best.number,
        serde_json::to_string(&best.params)?
    );
    let pruned = study.trials_in(&[ferrotune::TrialState::Pruned])?.len();
    println!("{pruned} of 100 trials were pruned early");
    Ok(())
}
