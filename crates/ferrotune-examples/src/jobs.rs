//! The classic HPO comparison of Yang & Shami 2020 ("On Hyperparameter Optimization of
//! Machine Learning Algorithms: Theory and Practice", Neurocomputing, section 7) as ferrotune
//! objectives: their search spaces (Table 3) and budgets, 3-fold cross-validated accuracy.
//!
//! Beside them, a fourth model the paper does not have: a small neural network
//! ([`MLP_JOB`], see [`crate::digits::mlp`]) trained epoch by epoch, whose objective
//! ([`mlp_error`]) reports the cross-validated error after every epoch so a pruner can stop
//! it early.

use crate::digits::{
    cv_accuracy, Criterion, Dataset, Kernel, MlpConfig, MlpCrossValidation, MlpState, ModelConfig,
    ModelKind, Split, BATCH_SIZE_RANGE, HIDDEN_LAYERS_RANGE, HIDDEN_WIDTH_RANGE,
    LEARNING_RATE_RANGE, MOMENTUM_RANGE, WEIGHT_DECAY_RANGE,
};
use ferrotune::pruner::Resource;
use ferrotune::schedule::SchedulerSpec;
use ferrotune::{Params, PrunerSpec, Trial, TrialError};

/// Cross-validation folds, as in the paper.
pub const FOLDS: usize = 3;

/// One model's tuning job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// The model family.
    pub kind: ModelKind,
    /// A short name for logs and study names.
    pub name: &'static str,
    /// The paper's budget of evaluations.
    pub trials: u64,
}

/// The paper's three classifiers with their budgets: 50 evaluations for RF and SVM, 10 for KNN.
pub const JOBS: [Job; 3] = [
    Job {
        kind: ModelKind::RandomForest,
        name: "rf",
        trials: 50,
    },
    Job {
        kind: ModelKind::Svm,
        name: "svm",
        trials: 50,
    },
    Job {
        kind: ModelKind::Knn,
        name: "knn",
        trials: 10,
    },
];

/// Suggests a configuration of `kind` from the paper's search space.
pub fn suggest_config(trial: &mut Trial<'_>, kind: ModelKind) -> ferrotune::Result<ModelConfig> {
    Ok(match kind {
        ModelKind::RandomForest => {
            let n_estimators = trial.suggest_int("n_estimators", 10, 100)? as usize;
            let max_depth = trial.suggest_int("max_depth", 5, 50)? as u16;
            let min_samples_split = trial.suggest_int("min_samples_split", 2, 11)? as usize;
            let min_samples_leaf = trial.suggest_int("min_samples_leaf", 1, 11)? as usize;
            let criterion = match trial.suggest_categorical("criterion", &["gini", "entropy"])? {
                "gini" => Criterion::Gini,
                _ => Criterion::Entropy,
            };
            let max_features = trial.suggest_int("max_features", 1, 64)? as usize;
            ModelConfig::RandomForest {
                n_estimators,
                max_depth,
                min_samples_split,
                min_samples_leaf,
                criterion,
                max_features,
            }
        }
        ModelKind::Svm => {
            let c = trial.suggest_float("C", 0.1, 50.0)?;
            let kernel =
                match trial.suggest_categorical("kernel", &["linear", "poly", "rbf", "sigmoid"])? {
                    "linear" => Kernel::Linear,
                    "poly" => Kernel::Poly,
                    "rbf" => Kernel::Rbf,
                    _ => Kernel::Sigmoid,
                };
            ModelConfig::Svm { c, kernel }
        }
        ModelKind::Knn => ModelConfig::Knn {
            n_neighbors: trial.suggest_int("n_neighbors", 1, 20)? as usize,
        },
    })
}

/// The objective: cross-validated accuracy (to maximize) of the suggested configuration, with
/// folds fixed by `fold_seed` so every trial is scored on the same split.
pub fn accuracy(
    data: &Dataset,
    kind: ModelKind,
    fold_seed: u64,
) -> impl Fn(&mut Trial<'_>) -> Result<f64, TrialError> + Send + Sync + '_ {
    move |trial| {
        let config = suggest_config(trial, kind)?;
        Ok(cv_accuracy(data, &config, FOLDS, fold_seed)?)
    }
}

/// Epochs every MLP trial trains at most: 27 = 3³, so successive halving and Hyperband with
/// η = 3 get rungs at exactly 1, 3, 9 and 27 epochs. Good configurations level off well
/// before that; slow ones (small learning rate, no momentum) are still far from their best,
/// which is part of what tuning has to find out.
pub const MLP_MAX_EPOCHS: u64 = 27;

/// The MLP's tuning job: the model is trained epoch by epoch, so its budget is counted in
/// trials and its trials in epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlpJob {
    /// A short name for logs and study names.
    pub name: &'static str,
    /// Trials per search (divided by the main job's `--budget-divisor`).
    pub trials: u64,
    /// Epochs a trial trains when nothing prunes it.
    pub max_epochs: u64,
}

/// The MLP job: 200 trials of at most [`MLP_MAX_EPOCHS`] epochs. A trial trains three
/// networks (one per fold) at 1 to 20 ms per epoch, so the search is cheap: with the default
/// pruner (successive halving) about four trials in five stop after 1 or 3 epochs, and the
/// search takes 5 to 20 s on two idle cores (more when TPE settles on wide three-layer
/// networks), about 35 s with no pruner.
pub const MLP_JOB: MlpJob = MlpJob {
    name: "mlp",
    trials: 200,
    max_epochs: MLP_MAX_EPOCHS,
};

/// The pruners the main job offers for the MLP, by name (see [`mlp_pruner`]).
pub const MLP_PRUNERS: [&str; 4] = ["none", "median", "asha", "hyperband"];

/// The pruner `name` of [`MLP_PRUNERS`] stands for, set up for trials of
/// [`MLP_MAX_EPOCHS`] epochs reported at steps 1, 2, …:
///
/// - `none`: [`PrunerSpec::Nop`], every trial trains to the end;
/// - `median`: Optuna's median pruner (once five trials have completed, stop a trial whose
///   error is worse than the median of the other trials' at the same epoch);
/// - `asha`: asynchronous successive halving with η = 3 from one epoch: rungs at 1, 3 and 9
///   epochs, each letting the best third of the trials that reached it go on;
/// - `hyperband`: Hyperband with η = 3 from 1 to 27 epochs (four brackets of successive
///   halving, from the aggressive one above to one that never stops a trial).
///
/// `None` for an unknown name.
pub fn mlp_pruner(name: &str) -> Option<PrunerSpec> {
    Some(match name {
        "none" => PrunerSpec::Nop,
        "median" => PrunerSpec::median(),
        "asha" => PrunerSpec::SuccessiveHalving {
            min_resource: Resource::Steps(1),
            reduction_factor: 3,
            min_early_stopping_rate: 0,
            bootstrap_count: 0,
        },
        "hyperband" => PrunerSpec::Hyperband {
            min_resource: 1,
            max_resource: Resource::Steps(MLP_MAX_EPOCHS),
            reduction_factor: 3,
            bootstrap_count: 0,
        },
        _ => return None,
    })
}

/// The MLP parameters' names, as [`suggest_mlp_config`] records them.
pub mod mlp_params {
    /// SGD's learning rate (float, log scale).
    pub const LEARNING_RATE: &str = "learning_rate";
    /// Minibatch size (integer, log scale).
    pub const BATCH_SIZE: &str = "batch_size";
    /// Hidden layers' width (integer, log scale).
    pub const HIDDEN_WIDTH: &str = "hidden_width";
    /// Number of hidden layers (integer).
    pub const HIDDEN_LAYERS: &str = "hidden_layers";
    /// L2 weight decay (float, log scale).
    pub const WEIGHT_DECAY: &str = "weight_decay";
    /// Momentum (float).
    pub const MOMENTUM: &str = "momentum";
}

/// Suggests an MLP configuration from the ranges documented in [`crate::digits::mlp`]
/// (learning rate, batch size, width, depth, weight decay, momentum).
pub fn suggest_mlp_config(trial: &mut Trial<'_>) -> ferrotune::Result<MlpConfig> {
    use mlp_params::*;
    let int = |(lo, hi): (usize, usize)| (lo as i64, hi as i64);
    let (lr_lo, lr_hi) = LEARNING_RATE_RANGE;
    let learning_rate = trial.suggest_float_log(LEARNING_RATE, lr_lo, lr_hi)?;
    let (lo, hi) = int(BATCH_SIZE_RANGE);
    let batch_size = trial.suggest_int_log(BATCH_SIZE, lo, hi)? as usize;
    let (lo, hi) = int(HIDDEN_WIDTH_RANGE);
    let hidden_width = trial.suggest_int_log(HIDDEN_WIDTH, lo, hi)? as usize;
    let (lo, hi) = int(HIDDEN_LAYERS_RANGE);
    let hidden_layers = trial.suggest_int(HIDDEN_LAYERS, lo, hi)? as usize;
    let (wd_lo, wd_hi) = WEIGHT_DECAY_RANGE;
    let weight_decay = trial.suggest_float_log(WEIGHT_DECAY, wd_lo, wd_hi)?;
    let (mu_lo, mu_hi) = MOMENTUM_RANGE;
    let momentum = trial.suggest_float(MOMENTUM, mu_lo, mu_hi)?;
    Ok(MlpConfig {
        learning_rate,
        batch_size,
        hidden_width,
        hidden_layers,
        weight_decay,
        momentum,
    })
}

/// The MLP configuration recorded in `params` by [`suggest_mlp_config`]; `None` when a
/// parameter is missing or of the wrong type (the values are not range-checked here:
/// [`MlpConfig::validate`] does that).
pub fn mlp_config_from_params(params: &Params) -> Option<MlpConfig> {
    use mlp_params::*;
    let float = |k: &str| params.get(k)?.as_f64();
    let size = |k: &str| usize::try_from(params.get(k)?.as_i64()?).ok();
    Some(MlpConfig {
        learning_rate: float(LEARNING_RATE)?,
        batch_size: size(BATCH_SIZE)?,
        hidden_width: size(HIDDEN_WIDTH)?,
        hidden_layers: size(HIDDEN_LAYERS)?,
        weight_decay: float(WEIGHT_DECAY)?,
        momentum: float(MOMENTUM)?,
    })
}

/// The MLP objective (to minimize): the suggested configuration is trained on every split
/// in lockstep (see [`MlpCrossValidation`]; fold `k` seeded from `seed` and `k`), and after
/// each epoch `e` of `1..=max_epochs` the mean held-out error over the folds is reported as
/// step `e`. When the study's pruner says so the trial stops with
/// [`TrialError::Pruned`]; otherwise its value is the error after the last epoch.
pub fn mlp_error(
    splits: &[Split],
    seed: u64,
    max_epochs: u64,
) -> impl Fn(&mut Trial<'_>) -> Result<f64, TrialError> + Send + Sync + '_ {
    move |trial| {
        let config = suggest_mlp_config(trial)?;
        let scheduled = trial.study().has_scheduler();
        let mut cv = match trial.resume_from() {
            Some(checkpoint) => MlpCrossValidation::resume(splits, load_folds(checkpoint.dir())?)?,
            None => MlpCrossValidation::new(splits, config, seed)?,
        };
        let mut error = f64::NAN;
        for epoch in trial.first_step()..=max_epochs {
            error = cv.train_epoch()?;
            if scheduled {
                // The scheduler may pause the trial here: then its networks are saved.
                trial.report_scheduled(epoch, error, |w| save_folds(&cv, w.dir()))?;
            } else {
                trial.report(epoch, error)?;
                if epoch < max_epochs && trial.should_prune()? {
                    return Err(TrialError::Pruned);
                }
            }
        }
        Ok(error)
    }
}

/// Saves each fold's network (weights and optimizer state) as `fold-<k>.bin` in `dir`.
fn save_folds(cv: &MlpCrossValidation<'_>, dir: &std::path::Path) -> std::io::Result<()> {
    for (k, trainer) in cv.trainers().iter().enumerate() {
        std::fs::write(
            dir.join(format!("fold-{k}.bin")),
            trainer.state().to_bytes(),
        )?;
    }
    Ok(())
}

/// Reads the fold networks [`save_folds`] wrote.
fn load_folds(dir: &std::path::Path) -> Result<Vec<MlpState>, TrialError> {
    let mut states = Vec::with_capacity(FOLDS);
    for k in 0..FOLDS {
        let file = dir.join(format!("fold-{k}.bin"));
        let bytes = std::fs::read(&file)
            .map_err(|e| TrialError::fail(format!("cannot read {}: {e}", file.display())))?;
        states.push(MlpState::from_bytes(&bytes)?);
    }
    Ok(states)
}

/// The pause-and-resume schedulers the main job offers for the MLP, by name (see
/// [`mlp_scheduler`]).
pub const MLP_SCHEDULERS: [&str; 4] = ["none", "asha", "hyperband", "bohb"];

/// The scheduler `name` of [`MLP_SCHEDULERS`] stands for, over epochs 1 to
/// [`MLP_MAX_EPOCHS`] with η = 3: `asha` is ASHA with promotion (trials pause at 1, 3 and 9
/// epochs and the best third are resumed from their checkpoints), `hyperband` synchronous
/// Hyperband, `bohb` Hyperband with BOHB's model; `none` (no scheduler: the pruner decides).
/// `None` for an unknown name.
pub fn mlp_scheduler(name: &str) -> Option<SchedulerSpec> {
    Some(match name {
        "none" => SchedulerSpec::None,
        "asha" => SchedulerSpec::Asha {
            min_resource: 1,
            max_resource: MLP_MAX_EPOCHS,
            eta: 3,
        },
        "hyperband" => SchedulerSpec::Hyperband {
            min_resource: 1,
            max_resource: MLP_MAX_EPOCHS,
            eta: 3,
            rounding: Default::default(),
            max_concurrent_brackets: 1,
        },
        "bohb" => SchedulerSpec::Bohb {
            min_resource: 1,
            max_resource: MLP_MAX_EPOCHS,
            eta: 3,
            max_concurrent_brackets: 1,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digits::{load_digits, stratified_splits};
    use ferrotune::{Direction, Optimize, SamplerSpec, Study, TrialState};

    /// KNN's space is cheap enough to search for real in a test: random search over
    /// k ∈ [1, 20] finds a configuration at least as good as smartcore's default k = 3 on a
    /// subsample, and every trial records exactly the paper's parameter.
    #[test]
    fn knn_search_records_the_space_and_matches_the_default() {
        let data = load_digits().stratified_subsample(60, 1).unwrap();
        let study = Study::builder()
            .direction(Direction::Maximize)
            .sampler(SamplerSpec::Random)
            .seed(3)
            .build()
            .unwrap();
        study
            .optimize(accuracy(&data, ModelKind::Knn, 0), Optimize::trials(8))
            .unwrap();
        let default =
            cv_accuracy(&data, &ModelConfig::default_for(ModelKind::Knn), FOLDS, 0).unwrap();
        assert!(study.best_value().unwrap() >= default - 1e-12);
        for t in study.trials_in(&[TrialState::Complete]).unwrap() {
            let k = t.params["n_neighbors"].as_i64().unwrap();
            assert!((1..=20).contains(&k));
            assert_eq!(t.params.len(), 1);
        }
    }

    /// The MLP objective through a real study (in-memory storage, random sampler, the main
    /// job's default pruner: successive halving with η = 3 from one epoch): every trial reports its cross-validated error at
    /// epochs 1, 2, … without gaps, some are pruned at a rung, the completed ones ran every
    /// epoch and their value is their last report, and the parameters map back to the
    /// configuration.
    #[test]
    fn mlp_trials_report_every_epoch_and_get_pruned() {
        let data = load_digits().stratified_subsample(20, 1).unwrap();
        let splits = stratified_splits(&data, FOLDS, 0).unwrap();
        let max_epochs = 4;
        let study = Study::builder()
            .direction(Direction::Minimize)
            .sampler(SamplerSpec::Random)
            .pruner(mlp_pruner("asha").unwrap())
            .seed(5)
            .build()
            .unwrap();
        study
            .optimize(mlp_error(&splits, 0, max_epochs), Optimize::trials(10))
            .unwrap();
        let trials = study.trials().unwrap();
        let pruned = study.trials_in(&[TrialState::Pruned]).unwrap();
        let complete = study.trials_in(&[TrialState::Complete]).unwrap();
        assert_eq!(pruned.len() + complete.len(), trials.len(), "none failed");
        assert!(!pruned.is_empty() && !complete.is_empty());
        for t in &trials {
            let steps: Vec<u64> = t.intermediate_values.keys().copied().collect();
            let last = t.last_step().unwrap();
            assert_eq!(steps, (1..=last).collect::<Vec<_>>());
            for v in t.intermediate_values.values() {
                assert!((0.0..=1.0).contains(&v[0]), "{v:?}");
            }
            assert!(mlp_config_from_params(&t.params).is_some_and(|c| c.validate().is_ok()));
        }
        for t in &pruned {
            assert!(t.last_step().unwrap() < max_epochs);
        }
        for t in &complete {
            assert_eq!(t.last_step(), Some(max_epochs));
            let reported = t.intermediate_values[&max_epochs][0];
            assert_eq!(t.value().unwrap().to_bits(), reported.to_bits());
        }
    }

    /// ASHA with promotion over the real networks: trials pause at rungs with their
    /// weights and optimizer state on disk, promoted ones resume from them, and a resumed
    /// trial's curve is bit for bit the curve of the same configuration trained without a
    /// pause — the checkpoint restored the whole training state.
    #[test]
    fn paused_networks_resume_bit_for_bit() {
        let data = load_digits().stratified_subsample(20, 1).unwrap();
        let splits = stratified_splits(&data, FOLDS, 0).unwrap();
        let dir = std::env::temp_dir().join(format!("ferrotune-mlp-ckpt-{}", std::process::id()));
        let max_epochs = 9;
        let study = Study::builder()
            .direction(Direction::Minimize)
            .sampler(SamplerSpec::Random)
            .scheduler(SchedulerSpec::Asha {
                min_resource: 1,
                max_resource: max_epochs,
                eta: 3,
            })
            .checkpoint_dir(&dir)
            .seed(5)
            .build()
            .unwrap();
        study
            .optimize(mlp_error(&splits, 0, max_epochs), Optimize::trials(12))
            .unwrap();
        let trials = study.trials().unwrap();
        let resumed: Vec<_> = trials
            .iter()
            .filter(|t| t.last_step().unwrap_or(0) > 1)
            .collect();
        assert!(!resumed.is_empty(), "some trials were promoted");
        assert!(trials.iter().any(|t| t.state == TrialState::Paused));
        for t in resumed {
            let config = mlp_config_from_params(&t.params).unwrap();
            let mut cv = MlpCrossValidation::new(&splits, config, 0).unwrap();
            for (&step, reported) in &t.intermediate_values {
                let fresh = cv.train_epoch().unwrap();
                assert_eq!(
                    fresh.to_bits(),
                    reported[0].to_bits(),
                    "trial #{} at epoch {step}",
                    t.number
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_offered_scheduler_builds_a_study() {
        for name in MLP_SCHEDULERS {
            let spec = mlp_scheduler(name).unwrap();
            assert!(spec.validate().is_ok(), "{name}");
        }
        assert!(mlp_scheduler("sometimes").is_none());
    }

    #[test]
    fn every_offered_pruner_builds() {
        for name in MLP_PRUNERS {
            let spec = mlp_pruner(name).unwrap();
            assert!(spec.build().is_ok(), "{name}");
        }
        assert!(mlp_pruner("sometimes").is_none());
    }
}
