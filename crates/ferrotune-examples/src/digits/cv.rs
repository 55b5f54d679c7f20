//! Stratified k-fold cross-validation.

use super::data::{derive_seed, stratified_folds, Dataset, Standardizer};
use super::models::{fit_predict, ModelConfig};
use super::EvalError;

/// Fits `config` on the `train` rows of `data` and returns its accuracy on
/// the `test` rows.
///
/// Features are standardized with the mean and standard deviation of the
/// training rows only. `seed` seeds the model's own randomness.
///
/// # Errors
/// [`EvalError::InvalidFolds`] if either index set is empty or out of range,
/// [`EvalError::InvalidParam`] if `config` does not fit the training set,
/// [`EvalError::Model`] / [`EvalError::InvalidData`] if fitting fails.
pub fn evaluate_split(
    data: &Dataset,
    config: &ModelConfig,
    train: &[usize],
    test: &[usize],
    seed: u64,
) -> Result<f64, EvalError> {
    let n = data.n_samples();
    if train.is_empty() || test.is_empty() {
        return Err(EvalError::InvalidFolds(
            "train and test sets must be non-empty".into(),
        ));
    }
    if let Some(&bad) = train.iter().chain(test).find(|&&i| i >= n) {
        return Err(EvalError::InvalidFolds(format!(
            "index {bad} out of range for {n} samples"
        )));
    }
    config.validate(train.len(), data.n_features())?;

    let scaler = Standardizer::fit(data.x(), train);
    let x_train = scaler.transform(data.x(), train)?;
    let x_test = scaler.transform(data.x(), test)?;
    let y_train: Vec<u32> = train.iter().map(|&i| data.y()[i]).collect();

    let predicted = fit_predict(config, &x_train, &y_train, &x_test, seed)?;
    let correct = predicted
        .iter()
        .zip(test)
        .filter(|&(&p, &i)| p == data.y()[i])
        .count();
    Ok(correct as f64 / test.len() as f64)
}

/// The training rows of each fold: the `n` rows outside its test fold, ascending.
fn train_folds(test_folds: &[Vec<usize>], n: usize) -> Vec<Vec<usize>> {
    let mut fold_of = vec![0; n];
    for (k, fold) in test_folds.iter().enumerate() {
        for &i in fold {
            fold_of[i] = k;
        }
    }
    (0..test_folds.len())
        .map(|k| (0..n).filter(|&i| fold_of[i] != k).collect())
        .collect()
}

/// Per-fold test accuracies of `config` under stratified `folds`-fold
/// cross-validation (see [`stratified_folds`] for the split).
///
/// The same `seed` always yields the same folds and the same model
/// randomness, hence identical scores. Folds run sequentially on the calling
/// thread (parallelize across trials instead).
///
/// # Errors
/// As [`stratified_folds`] and [`evaluate_split`].
pub fn cv_scores(
    data: &Dataset,
    config: &ModelConfig,
    folds: usize,
    seed: u64,
) -> Result<Vec<f64>, EvalError> {
    let test_folds = stratified_folds(data.y(), folds, seed)?;
    train_folds(&test_folds, data.n_samples())
        .iter()
        .zip(&test_folds)
        .enumerate()
        .map(|(k, (train, test))| {
            evaluate_split(data, config, train, test, derive_seed(seed, k as u64))
        })
        .collect()
}

/// One train/test split of a dataset: the training part and the held-out part.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The rows a model is fitted on.
    pub train: Dataset,
    /// The held-out rows it is scored on.
    pub test: Dataset,
}

/// The `folds` train/test splits of stratified `folds`-fold cross-validation, as datasets:
/// the same folds [`cv_scores`] uses for this `seed` (fold `k` is the test part of split
/// `k`, rows in their original order). Models trained epoch by epoch (the MLP) build them
/// once and keep one trainer per split.
///
/// # Errors
/// As [`stratified_folds`].
pub fn stratified_splits(data: &Dataset, folds: usize, seed: u64) -> Result<Vec<Split>, EvalError> {
    let test_folds = stratified_folds(data.y(), folds, seed)?;
    train_folds(&test_folds, data.n_samples())
        .iter()
        .zip(&test_folds)
        .map(|(train, test)| {
            Ok(Split {
                train: data.subset(train)?,
                test: data.subset(test)?,
            })
        })
        .collect()
}

/// Mean test accuracy of `config` over stratified `folds`-fold
/// cross-validation — the objective to maximize in hyperparameter search.
///
/// # Errors
/// As [`cv_scores`].
pub fn cv_accuracy(
    data: &Dataset,
    config: &ModelConfig,
    folds: usize,
    seed: u64,
) -> Result<f64, EvalError> {
    let scores = cv_scores(data, config, folds, seed)?;
    Ok(scores.iter().sum::<f64>() / scores.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digits::{load_digits, Criterion, Kernel, ModelKind};

    /// 80 samples per class: big enough for every SVC class pair (≥ 64 rows
    /// per pair in the training folds), small enough to keep tests fast.
    fn small_digits() -> Dataset {
        load_digits().stratified_subsample(80, 3).unwrap()
    }

    #[test]
    fn knn_1_on_full_digits_is_accurate() {
        let acc = cv_accuracy(&load_digits(), &ModelConfig::Knn { n_neighbors: 1 }, 3, 0).unwrap();
        assert!(acc > 0.93, "accuracy {acc}");
    }

    #[test]
    fn default_random_forest_is_accurate_and_deterministic() {
        let data = small_digits();
        let config = ModelConfig::default_for(ModelKind::RandomForest);
        let a = cv_scores(&data, &config, 3, 11).unwrap();
        let b = cv_scores(&data, &config, 3, 11).unwrap();
        assert_eq!(a, b, "same seed must reproduce the scores exactly");
        let mean = a.iter().sum::<f64>() / 3.0;
        assert!(mean > 0.88, "accuracy {mean}");
    }

    #[test]
    fn crippled_random_forest_is_much_worse() {
        let data = small_digits();
        let config = ModelConfig::RandomForest {
            n_estimators: 10,
            max_depth: 1,
            min_samples_split: 2,
            min_samples_leaf: 1,
            criterion: Criterion::Entropy,
            max_features: 1,
        };
        let acc = cv_accuracy(&data, &config, 3, 0).unwrap();
        assert!(
            acc < 0.6,
            "depth-1 stumps on one feature should be weak, got {acc}"
        );
    }

    #[test]
    fn svm_rbf_and_linear_are_accurate() {
        let data = small_digits();
        for kernel in [Kernel::Rbf, Kernel::Linear] {
            let acc = cv_accuracy(&data, &ModelConfig::Svm { c: 10.0, kernel }, 3, 0).unwrap();
            assert!(acc > 0.9, "{kernel:?}: accuracy {acc}");
        }
    }

    /// The splits are cv_scores' folds as datasets: the test parts partition the data
    /// (stratified), and a model scored on split k gets fold k's score.
    #[test]
    fn splits_are_the_cross_validation_folds() {
        let data = small_digits();
        let splits = stratified_splits(&data, 3, 5).unwrap();
        assert_eq!(splits.len(), 3);
        let config = ModelConfig::Knn { n_neighbors: 3 };
        let scores = cv_scores(&data, &config, 3, 5).unwrap();
        for (k, split) in splits.iter().enumerate() {
            assert_eq!(
                split.train.n_samples() + split.test.n_samples(),
                data.n_samples()
            );
            for class in data.classes() {
                let here = split.test.y().iter().filter(|&&y| y == class).count();
                assert!(here.abs_diff(80 / 3) <= 1, "class {class}: {here}");
            }
            let rows = |d: &Dataset| -> Vec<usize> { (0..d.n_samples()).collect() };
            let joined = Dataset::new(
                split
                    .train
                    .x()
                    .iter()
                    .chain(split.test.x())
                    .cloned()
                    .collect(),
                split
                    .train
                    .y()
                    .iter()
                    .chain(split.test.y())
                    .copied()
                    .collect(),
            )
            .unwrap();
            let n_train = split.train.n_samples();
            let all = rows(&joined);
            let score =
                evaluate_split(&joined, &config, &all[..n_train], &all[n_train..], 0).unwrap();
            assert!((score - scores[k]).abs() < 1e-12, "fold {k}");
        }
        assert!(data.subset(&[]).is_err());
        assert!(data.subset(&[data.n_samples()]).is_err());
    }

    #[test]
    fn invalid_config_is_an_error_not_a_panic() {
        let data = small_digits();
        let err = cv_accuracy(&data, &ModelConfig::Knn { n_neighbors: 0 }, 3, 0).unwrap_err();
        assert!(matches!(
            err,
            EvalError::InvalidParam {
                name: "n_neighbors",
                ..
            }
        ));
        let err = cv_accuracy(&data, &ModelConfig::Knn { n_neighbors: 1 }, 1, 0).unwrap_err();
        assert!(matches!(err, EvalError::InvalidFolds(_)));
        let err = evaluate_split(
            &data,
            &ModelConfig::Knn { n_neighbors: 1 },
            &[0],
            &[10_000],
            0,
        )
        .unwrap_err();
        assert!(matches!(err, EvalError::InvalidFolds(_)));
    }
}
