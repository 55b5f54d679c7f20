//! Cross-validated evaluation of classic classifiers, and of a small neural network, on the
//! digits dataset.
//!
//! This module wraps three [`smartcore`] classifiers — random forest, support
//! vector machine and k-nearest neighbours — behind one [`ModelConfig`] enum
//! and scores them with seeded, stratified k-fold cross-validation
//! ([`cv_accuracy`]). The hyperparameters mirror the search spaces of
//! Yang & Shami (2020), "On hyperparameter optimization of machine learning
//! algorithms: Theory and practice":
//!
//! | model | hyperparameter | range |
//! |-|-|-|
//! | RF  | `n_estimators` | 10..=100 |
//! | RF  | `max_depth` | 5..=50 |
//! | RF  | `min_samples_split` | 2..=11 |
//! | RF  | `min_samples_leaf` | 1..=11 |
//! | RF  | `criterion` | gini / entropy |
//! | RF  | `max_features` | 1..=64 |
//! | SVM | `c` | 0.1..=50 |
//! | SVM | `kernel` | linear / poly / rbf / sigmoid |
//! | KNN | `n_neighbors` | 1..=20 |
//!
//! Beside them, [`MlpTrainer`] trains a small neural network (a multilayer perceptron,
//! plain Rust, see [`mlp`] for its design and search space) epoch by epoch, so its learning
//! curve can be reported and pruned; [`MlpCrossValidation`] runs the folds in lockstep.
//!
//! Preprocessing: features are z-scored **inside every fold** using only the
//! training part's mean and (population) standard deviation, so no test-fold
//! information leaks into training. Constant features get scale 1 (they map
//! to 0).
//!
//! ```no_run
//! use ferrotune_examples::digits::{ModelConfig, ModelKind, cv_accuracy, load_digits};
//!
//! let data = load_digits();
//! let config = ModelConfig::default_for(ModelKind::Knn);
//! let accuracy = cv_accuracy(&data, &config, 3, 42)?;
//! assert!(accuracy > 0.9);
//! # Ok::<(), ferrotune_examples::digits::EvalError>(())
//! ```

mod cv;
mod data;
pub mod mlp;
mod models;
mod svm;

pub use cv::{cv_accuracy, cv_scores, evaluate_split, stratified_splits, Split};
pub use data::{
    load_digits, stratified_folds, Dataset, DIGITS_N_CLASSES, DIGITS_N_FEATURES, DIGITS_N_SAMPLES,
};
pub use mlp::{
    epoch_cost, validation_curve, CheckpointError, MlpConfig, MlpCrossValidation, MlpState,
    MlpTrainer, BATCH_SIZE_RANGE, CHECKPOINT_VERSION, DIVERGED_ERROR, HIDDEN_LAYERS_RANGE,
    HIDDEN_WIDTH_RANGE, LEARNING_RATE_RANGE, MOMENTUM_RANGE, SIM_SECONDS_PER_PARAM_SAMPLE,
    WEIGHT_DECAY_RANGE,
};
pub use models::{
    Criterion, Kernel, ModelConfig, ModelKind, SVM_DEGREE, SVM_EPOCHS, SVM_POLY_COEF0,
    SVM_SIGMOID_COEF0, SVM_TOL,
};

/// Errors produced while building datasets, validating configurations or
/// fitting models.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The dataset is malformed (empty, ragged, non-finite, length mismatch…).
    #[error("invalid dataset: {0}")]
    InvalidData(String),

    /// A hyperparameter is outside the range the model can handle.
    #[error("invalid hyperparameter `{name}`: {reason}")]
    InvalidParam {
        /// Name of the offending hyperparameter.
        name: &'static str,
        /// Why the value was rejected.
        reason: String,
    },

    /// The requested cross-validation split cannot be built for this dataset.
    #[error("invalid cross-validation setup: {0}")]
    InvalidFolds(String),

    /// An MLP checkpoint could not be read or does not fit the training set.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),

    /// smartcore reported an error while fitting or predicting.
    #[error("{model} failed: {source}")]
    Model {
        /// Which model failed (`"random forest"`, `"svm"`, `"knn"`).
        model: &'static str,
        /// The underlying smartcore error.
        #[source]
        source: smartcore::error::Failed,
    },
}

impl EvalError {
    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParam {
            name,
            reason: reason.into(),
        }
    }
}
