//! Model configurations and the glue that fits smartcore models.

use smartcore::ensemble::random_forest_classifier::{
    RandomForestClassifier, RandomForestClassifierParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::neighbors::knn_classifier::{KNNClassifier, KNNClassifierParameters};
use smartcore::tree::decision_tree_classifier::SplitCriterion;

use super::data::DIGITS_N_FEATURES;
use super::EvalError;

/// Number of passes over the training data made by smartcore's LaSVM-style
/// SVC solver (`SVCParameters::epoch`).
///
/// smartcore's default is 2; one pass halves the fit time at small `C`
/// (the slowest region: RBF, C = 0.1 drops from ~7.4 s to ~4.4 s per digits
/// fold) and moved 3-fold CV accuracy by at most 0.005 on a C × kernel grid.
pub const SVM_EPOCHS: usize = 1;
/// Stopping tolerance of the SVC solver (`SVCParameters::tol`; smartcore's
/// default is 1e-3).
pub const SVM_TOL: f64 = 1e-3;
/// Degree of the polynomial kernel (smartcore has no default; 3 as in libsvm).
pub const SVM_DEGREE: f64 = 3.0;
/// `coef0` of the polynomial kernel: smartcore's `Kernels::polynomial()`
/// default. (libsvm's 0 gave 0.57 instead of 0.98 accuracy at C = 0.1.)
pub const SVM_POLY_COEF0: f64 = 1.0;
/// `coef0` of the sigmoid kernel: the libsvm/scikit-learn default.
/// (smartcore's `Kernels::sigmoid()` default of 1 gave 0.42 accuracy at C = 0.1.)
pub const SVM_SIGMOID_COEF0: f64 = 0.0;

/// Split quality measure for the random forest's trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Criterion {
    /// Gini impurity (smartcore's default).
    Gini,
    /// Information gain (Shannon entropy).
    Entropy,
}

/// SVM kernel. smartcore's kernels have no usable default `gamma`/`degree`
/// (unset values make smartcore *panic* during fitting), so they are fixed
/// here:
///
/// * `gamma = 1 / (n_features · Var(X_train))` ("scale"), computed on the
///   standardized training fold;
/// * `degree = 3` ([`SVM_DEGREE`]);
/// * `coef0 = 1` for poly ([`SVM_POLY_COEF0`]), `0` for sigmoid
///   ([`SVM_SIGMOID_COEF0`]) — whichever of smartcore's / libsvm's default
///   works on standardized digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// `⟨x, x'⟩`
    Linear,
    /// `(γ⟨x, x'⟩ + coef0)^degree`
    Poly,
    /// `exp(−γ‖x − x'‖²)`
    Rbf,
    /// `tanh(γ⟨x, x'⟩ + coef0)`
    Sigmoid,
}

/// Which model family a configuration belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// Random forest classifier.
    RandomForest,
    /// Support vector classifier (one-vs-one multi-class).
    Svm,
    /// k-nearest-neighbours classifier.
    Knn,
}

/// Hyperparameters of one classifier, named as in scikit-learn / Yang & Shami.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// smartcore `RandomForestClassifier` (bootstrap sampling per class,
    /// majority vote).
    RandomForest {
        /// Number of trees (smartcore `n_trees`, at most `u16::MAX`).
        n_estimators: usize,
        /// Maximum tree depth in scikit-learn's sense (number of split
        /// levels; 1 = a stump); `u16::MAX` means unlimited. smartcore counts
        /// the root as level 1 (its `max_depth = 1` never splits), so
        /// `max_depth + 1` is passed to it.
        max_depth: u16,
        /// Minimum (bootstrap-weighted) number of samples to split a node, ≥ 2.
        min_samples_split: usize,
        /// Minimum number of samples in each child of a split, ≥ 1.
        min_samples_leaf: usize,
        /// Split quality measure.
        criterion: Criterion,
        /// Features tried per split (smartcore `m`), in `1..=n_features`.
        max_features: usize,
    },
    /// Support vector classifier, one-vs-one over all class pairs.
    Svm {
        /// Regularization parameter `C > 0`.
        c: f64,
        /// Kernel function.
        kernel: Kernel,
    },
    /// k-nearest-neighbours (Euclidean distance, uniform weights, cover tree).
    Knn {
        /// Number of neighbours `k`, in `1..=n_train`.
        n_neighbors: usize,
    },
}

impl ModelConfig {
    /// smartcore's own default hyperparameters for `kind`, on the 64-feature
    /// digits data. See [`ModelConfig::default_for_features`].
    #[must_use]
    pub fn default_for(kind: ModelKind) -> Self {
        Self::default_for_features(kind, DIGITS_N_FEATURES)
    }

    /// smartcore's own default hyperparameters for `kind` on data with
    /// `n_features` columns:
    ///
    /// * RF: 100 trees, unlimited depth, split 2, leaf 1, Gini,
    ///   `m = floor(sqrt(n_features))` (8 for digits);
    /// * SVM: `C = 1`. smartcore has no default kernel (fitting without one
    ///   is an error), so RBF — the libsvm/scikit-learn default — is used;
    /// * KNN: `k = 3`.
    #[must_use]
    pub fn default_for_features(kind: ModelKind, n_features: usize) -> Self {
        match kind {
            ModelKind::RandomForest => {
                let p = RandomForestClassifierParameters::default();
                Self::RandomForest {
                    n_estimators: usize::from(p.n_trees),
                    max_depth: p.max_depth.unwrap_or(u16::MAX),
                    min_samples_split: p.min_samples_split,
                    min_samples_leaf: p.min_samples_leaf,
                    criterion: Criterion::Gini,
                    max_features: p
                        .m
                        .unwrap_or_else(|| (n_features as f64).sqrt().floor() as usize)
                        .max(1),
                }
            }
            ModelKind::Svm => Self::Svm {
                c: 1.0,
                kernel: Kernel::Rbf,
            },
            ModelKind::Knn => Self::Knn {
                n_neighbors: KNNClassifierParameters::<f64, _>::default().k,
            },
        }
    }

    /// The model family of this configuration.
    #[must_use]
    pub fn kind(&self) -> ModelKind {
        match self {
            Self::RandomForest { .. } => ModelKind::RandomForest,
            Self::Svm { .. } => ModelKind::Svm,
            Self::Knn { .. } => ModelKind::Knn,
        }
    }

    /// Checks the hyperparameters against a training set of `n_train` rows
    /// and `n_features` columns.
    ///
    /// # Errors
    /// [`EvalError::InvalidParam`] naming the first offending hyperparameter.
    pub fn validate(&self, n_train: usize, n_features: usize) -> Result<(), EvalError> {
        match *self {
            Self::RandomForest {
                n_estimators,
                max_depth,
                min_samples_split,
                min_samples_leaf,
                max_features,
                ..
            } => {
                if n_estimators == 0 || n_estimators > usize::from(u16::MAX) {
                    return Err(EvalError::param(
                        "n_estimators",
                        format!("{n_estimators} not in 1..=65535"),
                    ));
                }
                if max_depth == 0 {
                    return Err(EvalError::param("max_depth", "must be at least 1"));
                }
                if min_samples_split < 2 {
                    return Err(EvalError::param(
                        "min_samples_split",
                        format!("{min_samples_split} < 2"),
                    ));
                }
                if min_samples_leaf == 0 {
                    return Err(EvalError::param("min_samples_leaf", "must be at least 1"));
                }
                if max_features == 0 || max_features > n_features {
                    return Err(EvalError::param(
                        "max_features",
                        format!("{max_features} not in 1..={n_features}"),
                    ));
                }
            }
            Self::Svm { c, .. } => {
                if !(c.is_finite() && c > 0.0) {
                    return Err(EvalError::param(
                        "c",
                        format!("{c} is not a finite positive number"),
                    ));
                }
            }
            Self::Knn { n_neighbors } => {
                if n_neighbors == 0 || n_neighbors > n_train {
                    return Err(EvalError::param(
                        "n_neighbors",
                        format!("{n_neighbors} not in 1..={n_train}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Fits `config` on standardized training data and predicts `x_test`.
///
/// `seed` drives every random choice of the model (RF bootstrap and feature
/// sampling, SVC visiting order), so results are reproducible.
pub(crate) fn fit_predict(
    config: &ModelConfig,
    x_train: &DenseMatrix<f64>,
    y_train: &[u32],
    x_test: &DenseMatrix<f64>,
    seed: u64,
) -> Result<Vec<u32>, EvalError> {
    match *config {
        ModelConfig::RandomForest {
            n_estimators,
            max_depth,
            min_samples_split,
            min_samples_leaf,
            criterion,
            max_features,
        } => {
            let n_trees = u16::try_from(n_estimators)
                .map_err(|_| EvalError::param("n_estimators", format!("{n_estimators} > 65535")))?;
            let params = RandomForestClassifierParameters::default()
                .with_n_trees(n_trees)
                .with_max_depth(max_depth.saturating_add(1))
                .with_min_samples_split(min_samples_split)
                .with_min_samples_leaf(min_samples_leaf)
                .with_criterion(match criterion {
                    Criterion::Gini => SplitCriterion::Gini,
                    Criterion::Entropy => SplitCriterion::Entropy,
                })
                .with_m(max_features)
                .with_seed(seed);
            let y = y_train.to_vec();
            let model = RandomForestClassifier::fit(x_train, &y, params).map_err(|source| {
                EvalError::Model {
                    model: "random forest",
                    source,
                }
            })?;
            model.predict(x_test).map_err(|source| EvalError::Model {
                model: "random forest",
                source,
            })
        }
        ModelConfig::Svm { c, kernel } => {
            super::svm::fit_predict_ovo(x_train, y_train, x_test, c, kernel, seed)
        }
        ModelConfig::Knn { n_neighbors } => {
            let params = KNNClassifierParameters::default().with_k(n_neighbors);
            let y = y_train.to_vec();
            let model =
                KNNClassifier::fit(x_train, &y, params).map_err(|source| EvalError::Model {
                    model: "knn",
                    source,
                })?;
            model.predict(x_test).map_err(|source| EvalError::Model {
                model: "knn",
                source,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_smartcore() {
        assert_eq!(
            ModelConfig::default_for(ModelKind::RandomForest),
            ModelConfig::RandomForest {
                n_estimators: 100,
                max_depth: u16::MAX,
                min_samples_split: 2,
                min_samples_leaf: 1,
                criterion: Criterion::Gini,
                max_features: 8,
            }
        );
        assert_eq!(
            ModelConfig::default_for(ModelKind::Knn),
            ModelConfig::Knn { n_neighbors: 3 }
        );
        assert_eq!(
            ModelConfig::default_for(ModelKind::Svm),
            ModelConfig::Svm {
                c: 1.0,
                kernel: Kernel::Rbf
            }
        );
        for kind in [ModelKind::RandomForest, ModelKind::Svm, ModelKind::Knn] {
            assert_eq!(ModelConfig::default_for(kind).kind(), kind);
        }
    }

    /// A random forest config with the given (split, leaf, max_features, trees, depth).
    fn rf(
        split: usize,
        leaf: usize,
        max_features: usize,
        n_estimators: usize,
        max_depth: u16,
    ) -> ModelConfig {
        ModelConfig::RandomForest {
            n_estimators,
            max_depth,
            min_samples_split: split,
            min_samples_leaf: leaf,
            criterion: Criterion::Entropy,
            max_features,
        }
    }

    #[test]
    fn validation_rejects_out_of_range_values() {
        let check = |c: ModelConfig| c.validate(100, 64);
        assert!(check(rf(2, 1, 64, 100, 50)).is_ok());
        assert!(
            check(rf(2, 1, 65, 100, 50)).is_err(),
            "max_features > n_features"
        );
        assert!(check(rf(2, 1, 0, 100, 50)).is_err(), "max_features = 0");
        assert!(
            check(rf(1, 1, 8, 100, 50)).is_err(),
            "min_samples_split < 2"
        );
        assert!(check(rf(2, 0, 8, 100, 50)).is_err(), "min_samples_leaf = 0");
        assert!(check(rf(2, 1, 8, 0, 50)).is_err(), "no trees");
        assert!(
            check(rf(2, 1, 8, 70_000, 50)).is_err(),
            "n_trees is a u16 in smartcore"
        );
        assert!(check(rf(2, 1, 8, 100, 0)).is_err(), "max_depth = 0");
        for c in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(ModelConfig::Svm {
                c,
                kernel: Kernel::Linear
            }
            .validate(100, 64)
            .is_err());
        }
        assert!(ModelConfig::Knn { n_neighbors: 0 }
            .validate(100, 64)
            .is_err());
        assert!(ModelConfig::Knn { n_neighbors: 101 }
            .validate(100, 64)
            .is_err());
        assert!(ModelConfig::Knn { n_neighbors: 100 }
            .validate(100, 64)
            .is_ok());
    }
}
