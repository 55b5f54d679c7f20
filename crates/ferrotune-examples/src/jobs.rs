//! The classic HPO comparison of Yang & Shami 2020 ("On Hyperparameter Optimization of
//! Machine Learning Algorithms: Theory and Practice", Neurocomputing, section 7) as ferrotune
//! objectives: their search spaces (Table 3) and budgets, 3-fold cross-validated accuracy.

use crate::digits::{cv_accuracy, Criterion, Dataset, Kernel, ModelConfig, ModelKind};
use ferrotune::{Trial, TrialError};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digits::load_digits;
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
}
