//! One-vs-one multi-class SVM on top of smartcore's binary `SVC`.
//!
//! smartcore 0.7 ships a `MultiClassSVC`, but its vote counting uses a
//! `HashMap` with random iteration order, so tied votes are broken
//! differently from run to run. This module trains the same 45 pairwise
//! classifiers itself and breaks ties deterministically (lowest class label
//! wins, as in libsvm).

use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::svm::svc::{SVCParameters, SVC};
use smartcore::svm::Kernels;

use super::models::{Kernel, SVM_DEGREE, SVM_EPOCHS, SVM_POLY_COEF0, SVM_SIGMOID_COEF0, SVM_TOL};
use super::EvalError;

type Params = SVCParameters<f64, i32, DenseMatrix<f64>, Vec<i32>>;

/// scikit-learn's `gamma="scale"`: `1 / (n_features · Var(X))`, the variance
/// taken over all matrix entries.
fn gamma_scale(x: &DenseMatrix<f64>) -> f64 {
    let (n, d) = x.shape();
    let count = (n * d) as f64;
    let mean = x.iter().sum::<f64>() / count;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / count;
    if var > 0.0 {
        1.0 / (d as f64 * var)
    } else {
        1.0
    }
}

/// smartcore kernel for `kernel`, with every coefficient set explicitly
/// (smartcore panics on an unset `gamma`/`degree`).
fn smartcore_kernel(kernel: Kernel, gamma: f64) -> Kernels {
    match kernel {
        Kernel::Linear => Kernels::linear(),
        Kernel::Poly => Kernels::polynomial()
            .with_gamma(gamma)
            .with_degree(SVM_DEGREE)
            .with_coef0(SVM_POLY_COEF0),
        Kernel::Rbf => Kernels::rbf().with_gamma(gamma),
        Kernel::Sigmoid => Kernels::sigmoid()
            .with_gamma(gamma)
            .with_coef0(SVM_SIGMOID_COEF0),
    }
}

/// Copies the listed rows of `x` into a new column-major matrix.
fn select_rows(x: &DenseMatrix<f64>, rows: &[usize]) -> Result<DenseMatrix<f64>, EvalError> {
    let (_, d) = x.shape();
    let mut values = Vec::with_capacity(rows.len() * d);
    for j in 0..d {
        values.extend(rows.iter().map(|&r| *x.get((r, j))));
    }
    DenseMatrix::new(rows.len(), d, values, true).map_err(|e| EvalError::InvalidData(e.to_string()))
}

/// Trains one binary SVC per class pair and predicts `x_test` by majority
/// vote.
pub(crate) fn fit_predict_ovo(
    x_train: &DenseMatrix<f64>,
    y_train: &[u32],
    x_test: &DenseMatrix<f64>,
    c: f64,
    kernel: Kernel,
    seed: u64,
) -> Result<Vec<u32>, EvalError> {
    let mut classes = y_train.to_vec();
    classes.sort_unstable();
    classes.dedup();
    if classes.len() < 2 {
        return Err(EvalError::InvalidData(
            "SVM needs at least two classes in the training data".into(),
        ));
    }
    let (_, n_features) = x_train.shape();
    let params: Params = SVCParameters::default()
        .with_c(c)
        .with_epoch(SVM_EPOCHS)
        .with_tol(SVM_TOL)
        .with_kernel(smartcore_kernel(kernel, gamma_scale(x_train)))
        .with_seed(Some(seed));

    let members: Vec<Vec<usize>> = classes
        .iter()
        .map(|&k| (0..y_train.len()).filter(|&i| y_train[i] == k).collect())
        .collect();

    let n_test = x_test.shape().0;
    let mut votes = vec![vec![0u32; classes.len()]; n_test];
    for a in 0..classes.len() {
        for b in a + 1..classes.len() {
            let rows: Vec<usize> = members[a].iter().chain(&members[b]).copied().collect();
            // smartcore 0.7 copies only the first `n_rows` features of each
            // training row (`take(n)` with n = number of rows), so pairs with
            // fewer rows than features would silently corrupt the model and
            // then panic in prediction.
            if rows.len() < n_features {
                return Err(EvalError::InvalidData(format!(
                    "SVM: class pair ({}, {}) has {} training rows, fewer than the {n_features} features \
                     smartcore's SVC needs",
                    classes[a],
                    classes[b],
                    rows.len()
                )));
            }
            let x_pair = select_rows(x_train, &rows)?;
            // +1 ↔ class a, −1 ↔ class b; smartcore maps a positive decision to the larger label.
            let y_pair: Vec<i32> = rows
                .iter()
                .map(|&i| if y_train[i] == classes[a] { 1 } else { -1 })
                .collect();
            let svc = SVC::fit(&x_pair, &y_pair, &params).map_err(|source| EvalError::Model {
                model: "svm",
                source,
            })?;
            let decision = svc
                .decision_function(x_test)
                .map_err(|source| EvalError::Model {
                    model: "svm",
                    source,
                })?;
            for (v, f) in votes.iter_mut().zip(decision) {
                v[if f > 0.0 { a } else { b }] += 1;
            }
        }
    }

    Ok(votes
        .iter()
        .map(|v| {
            // First maximum = lowest class label among tied classes.
            let best = v
                .iter()
                .enumerate()
                .fold(0, |best, (i, &n)| if n > v[best] { i } else { best });
            classes[best]
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: &[[f64; 2]]) -> DenseMatrix<f64> {
        let v: Vec<Vec<f64>> = rows.iter().map(|r| r.to_vec()).collect();
        DenseMatrix::from_2d_vec(&v).unwrap()
    }

    #[test]
    fn separates_three_gaussian_like_blobs() {
        let centers = [[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]];
        let offsets = [
            [0.3, 0.1],
            [-0.2, 0.4],
            [0.1, -0.3],
            [-0.4, -0.2],
            [0.2, 0.2],
        ];
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for (k, c) in centers.iter().enumerate() {
            for o in offsets {
                rows.push([c[0] + o[0], c[1] + o[1]]);
                y.push(k as u32 * 10); // non-contiguous labels on purpose
            }
        }
        let x = matrix(&rows);
        let test = matrix(&[[0.1, 0.0], [4.9, 0.2], [0.0, 4.8]]);
        for kernel in [Kernel::Linear, Kernel::Rbf, Kernel::Poly] {
            let pred = fit_predict_ovo(&x, &y, &test, 10.0, kernel, 1).unwrap();
            assert_eq!(pred, vec![0, 10, 20], "kernel {kernel:?}");
        }
    }

    #[test]
    fn rejects_pairs_smaller_than_feature_count() {
        // 2 classes × 2 rows = 4 rows < 5 features.
        let v: Vec<Vec<f64>> = (0..4).map(|i| vec![i as f64; 5]).collect();
        let x = DenseMatrix::from_2d_vec(&v).unwrap();
        let err = fit_predict_ovo(&x, &[0, 0, 1, 1], &x, 1.0, Kernel::Linear, 0).unwrap_err();
        assert!(matches!(err, EvalError::InvalidData(_)));
    }

    #[test]
    fn gamma_scale_of_standardized_data_is_one_over_features() {
        let x = matrix(&[[-1.0, 1.0], [1.0, -1.0]]);
        assert!((gamma_scale(&x) - 0.5).abs() < 1e-12);
    }
}
