//! Dataset container, the bundled digits data, seeded stratified folds and
//! per-fold standardization.

use smartcore::linalg::basic::matrix::DenseMatrix;

use super::EvalError;

/// Number of samples in the digits dataset.
pub const DIGITS_N_SAMPLES: usize = 1797;
/// Number of features (8×8 pixel intensities, 0..=16) in the digits dataset.
pub const DIGITS_N_FEATURES: usize = 64;
/// Number of classes (digits 0–9) in the digits dataset.
pub const DIGITS_N_CLASSES: usize = 10;

/// A dense classification dataset: one feature row per sample plus an integer
/// class label.
///
/// The invariants (non-empty, rectangular, finite features, one label per row)
/// are checked by [`Dataset::new`], so every other function can rely on them.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    x: Vec<Vec<f64>>,
    y: Vec<u32>,
}

impl Dataset {
    /// Builds a dataset from feature rows and labels.
    ///
    /// # Errors
    /// [`EvalError::InvalidData`] if there are no rows, no features, rows of
    /// different lengths, non-finite values, or `x.len() != y.len()`.
    pub fn new(x: Vec<Vec<f64>>, y: Vec<u32>) -> Result<Self, EvalError> {
        if x.len() != y.len() {
            return Err(EvalError::InvalidData(format!(
                "{} feature rows but {} labels",
                x.len(),
                y.len()
            )));
        }
        let n_features = x.first().map_or(0, Vec::len);
        if n_features == 0 {
            return Err(EvalError::InvalidData(
                "dataset has no samples or no features".into(),
            ));
        }
        for (i, row) in x.iter().enumerate() {
            if row.len() != n_features {
                return Err(EvalError::InvalidData(format!(
                    "row {i} has {} features, expected {n_features}",
                    row.len()
                )));
            }
            if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                return Err(EvalError::InvalidData(format!(
                    "non-finite value at row {i}, column {j}"
                )));
            }
        }
        Ok(Self { x, y })
    }

    /// Feature rows (raw, not standardized).
    #[must_use]
    pub fn x(&self) -> &[Vec<f64>] {
        &self.x
    }

    /// Class labels, one per row.
    #[must_use]
    pub fn y(&self) -> &[u32] {
        &self.y
    }

    /// Number of samples (rows).
    #[must_use]
    pub fn n_samples(&self) -> usize {
        self.x.len()
    }

    /// Number of features (columns).
    #[must_use]
    pub fn n_features(&self) -> usize {
        self.x[0].len()
    }

    /// Distinct class labels, sorted ascending.
    #[must_use]
    pub fn classes(&self) -> Vec<u32> {
        let mut classes = self.y.clone();
        classes.sort_unstable();
        classes.dedup();
        classes
    }

    /// The rows at `rows` (in that order, repeats allowed), as a new dataset.
    ///
    /// # Errors
    /// [`EvalError::InvalidData`] if `rows` is empty or an index is out of range.
    pub fn subset(&self, rows: &[usize]) -> Result<Self, EvalError> {
        if rows.is_empty() {
            return Err(EvalError::InvalidData(
                "a subset needs at least one row".into(),
            ));
        }
        if let Some(&bad) = rows.iter().find(|&&i| i >= self.x.len()) {
            return Err(EvalError::InvalidData(format!(
                "row {bad} out of range for {} samples",
                self.x.len()
            )));
        }
        Ok(Self {
            x: rows.iter().map(|&i| self.x[i].clone()).collect(),
            y: rows.iter().map(|&i| self.y[i]).collect(),
        })
    }

    /// A seeded, class-stratified subsample containing at most
    /// `per_class` rows of every class (rows keep their original order).
    ///
    /// Useful for fast tests and cheap low-fidelity evaluations.
    ///
    /// # Errors
    /// [`EvalError::InvalidData`] if `per_class` is zero.
    pub fn stratified_subsample(&self, per_class: usize, seed: u64) -> Result<Self, EvalError> {
        if per_class == 0 {
            return Err(EvalError::InvalidData(
                "per_class must be at least 1".into(),
            ));
        }
        let mut rng = SplitMix64::new(seed);
        let mut keep: Vec<usize> = Vec::new();
        for class in self.classes() {
            let mut idx: Vec<usize> = (0..self.y.len()).filter(|&i| self.y[i] == class).collect();
            rng.shuffle(&mut idx);
            idx.truncate(per_class);
            keep.extend(idx);
        }
        keep.sort_unstable();
        Ok(Self {
            x: keep.iter().map(|&i| self.x[i].clone()).collect(),
            y: keep.iter().map(|&i| self.y[i]).collect(),
        })
    }
}

/// Loads smartcore's bundled copy of the UCI optical digits dataset
/// (1797 samples × 64 features, labels 0–9).
///
/// Features are returned **raw** (integers 0..=16 as `f64`); standardization
/// happens per cross-validation fold (see the crate docs).
///
/// smartcore stores the data as `f32` row-major with `f32` labels; the labels
/// are converted to `u32`. (Its `feature_names`/`target_names` for digits are
/// copied from iris and are wrong, so they are not exposed.)
#[must_use]
pub fn load_digits() -> Dataset {
    let raw = smartcore::dataset::digits::load_dataset();
    let n_features = raw.num_features;
    let x = raw
        .data
        .chunks_exact(n_features)
        .map(|row| row.iter().map(|&v| f64::from(v)).collect())
        .collect();
    // Labels are stored as exact small integers (0.0..=9.0) in f32.
    let y = raw.target.iter().map(|&t| t as u32).collect();
    Dataset { x, y }
}

/// Splits sample indices into `folds` stratified folds, deterministically for
/// a given `seed`.
///
/// Each class's indices are shuffled with a seeded SplitMix64 generator and
/// dealt round-robin into folds; the dealing position carries over from one
/// class to the next, so fold sizes differ by at most one. Returns the
/// *test* indices of each fold, sorted ascending; the training set of fold
/// `k` is the union of all other folds.
///
/// # Errors
/// [`EvalError::InvalidFolds`] if `folds < 2` or some class has fewer than
/// `folds` members (then a fold would miss that class entirely).
pub fn stratified_folds(y: &[u32], folds: usize, seed: u64) -> Result<Vec<Vec<usize>>, EvalError> {
    if folds < 2 {
        return Err(EvalError::InvalidFolds(format!(
            "need at least 2 folds, got {folds}"
        )));
    }
    let mut classes = y.to_vec();
    classes.sort_unstable();
    classes.dedup();

    let mut rng = SplitMix64::new(seed);
    let mut out = vec![Vec::new(); folds];
    let mut next_fold = 0;
    for class in classes {
        let mut idx: Vec<usize> = (0..y.len()).filter(|&i| y[i] == class).collect();
        if idx.len() < folds {
            return Err(EvalError::InvalidFolds(format!(
                "class {class} has {} samples, fewer than {folds} folds",
                idx.len()
            )));
        }
        rng.shuffle(&mut idx);
        for i in idx {
            out[next_fold].push(i);
            next_fold = (next_fold + 1) % folds;
        }
    }
    for fold in &mut out {
        fold.sort_unstable();
    }
    Ok(out)
}

/// Z-score parameters estimated on a training set.
#[derive(Debug, Clone)]
pub(crate) struct Standardizer {
    mean: Vec<f64>,
    scale: Vec<f64>,
}

impl Standardizer {
    /// Estimates per-feature mean and population standard deviation of the
    /// given rows. Zero-variance features get scale 1.
    pub(crate) fn fit(x: &[Vec<f64>], rows: &[usize]) -> Self {
        let d = x[0].len();
        let n = rows.len() as f64;
        let mut mean = vec![0.0; d];
        for &r in rows {
            for (m, v) in mean.iter_mut().zip(&x[r]) {
                *m += v;
            }
        }
        for m in &mut mean {
            *m /= n;
        }
        let mut var = vec![0.0; d];
        for &r in rows {
            for ((s, v), m) in var.iter_mut().zip(&x[r]).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        let scale = var
            .into_iter()
            .map(|s| {
                let sd = (s / n).sqrt();
                if sd > 1e-12 {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        Self { mean, scale }
    }

    /// Standardizes one row into `out` (same length), as `f32`.
    pub(crate) fn standardize_row(&self, row: &[f64], out: &mut [f32]) {
        for (((o, v), m), s) in out.iter_mut().zip(row).zip(&self.mean).zip(&self.scale) {
            *o = ((v - m) / s) as f32;
        }
    }

    /// Standardizes the given rows of `x` into a column-major smartcore matrix.
    pub(crate) fn transform(
        &self,
        x: &[Vec<f64>],
        rows: &[usize],
    ) -> Result<DenseMatrix<f64>, EvalError> {
        let d = self.mean.len();
        let mut values = Vec::with_capacity(rows.len() * d);
        for (j, (&m, &s)) in self.mean.iter().zip(&self.scale).enumerate() {
            values.extend(rows.iter().map(|&r| (x[r][j] - m) / s));
        }
        DenseMatrix::new(rows.len(), d, values, true)
            .map_err(|e| EvalError::InvalidData(e.to_string()))
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast and stable across crate
/// versions, which keeps fold assignments reproducible forever.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform integer in `0..n` (`n > 0`), via the multiply-shift reduction.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Fisher–Yates shuffle.
    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// Derives an independent seed for a sub-task (fold, model) from a base seed.
pub(crate) fn derive_seed(seed: u64, stream: u64) -> u64 {
    SplitMix64::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_shape_and_labels() {
        let d = load_digits();
        assert_eq!(d.n_samples(), DIGITS_N_SAMPLES);
        assert_eq!(d.n_features(), DIGITS_N_FEATURES);
        assert_eq!(
            d.classes(),
            (0..DIGITS_N_CLASSES as u32).collect::<Vec<_>>()
        );
        assert!(d
            .x()
            .iter()
            .flatten()
            .all(|&v| (0.0..=16.0).contains(&v) && v.fract() == 0.0));
    }

    #[test]
    fn dataset_new_rejects_bad_input() {
        assert!(Dataset::new(vec![], vec![]).is_err());
        assert!(Dataset::new(vec![vec![1.0]], vec![0, 1]).is_err());
        assert!(Dataset::new(vec![vec![1.0], vec![1.0, 2.0]], vec![0, 1]).is_err());
        assert!(Dataset::new(vec![vec![f64::NAN]], vec![0]).is_err());
        assert!(Dataset::new(vec![vec![1.0], vec![2.0]], vec![0, 1]).is_ok());
    }

    #[test]
    fn folds_are_deterministic_partition_and_stratified() {
        let d = load_digits();
        let a = stratified_folds(d.y(), 3, 7).unwrap();
        let b = stratified_folds(d.y(), 3, 7).unwrap();
        let c = stratified_folds(d.y(), 3, 8).unwrap();
        assert_eq!(a, b, "same seed must give the same folds");
        assert_ne!(a, c, "different seeds should give different folds");

        let mut all: Vec<usize> = a.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..d.n_samples()).collect::<Vec<_>>(),
            "folds must partition the data"
        );
        for fold in &a {
            assert_eq!(fold.len(), 599); // 1797 / 3
            for class in d.classes() {
                let total = d.y().iter().filter(|&&y| y == class).count();
                let here = fold.iter().filter(|&&i| d.y()[i] == class).count();
                assert!(
                    here.abs_diff(total / 3) <= 1,
                    "class {class}: {here} of {total}"
                );
            }
        }
    }

    #[test]
    fn folds_reject_bad_setups() {
        assert!(stratified_folds(&[0, 0, 1, 1], 1, 0).is_err());
        assert!(stratified_folds(&[0, 0, 1, 1], 3, 0).is_err());
        assert!(stratified_folds(&[0, 0, 1, 1], 2, 0).is_ok());
    }

    #[test]
    fn standardizer_uses_training_rows_only() {
        let x = vec![vec![0.0, 5.0], vec![2.0, 5.0], vec![100.0, 5.0]];
        let s = Standardizer::fit(&x, &[0, 1]);
        let m = s.transform(&x, &[0, 1, 2]).unwrap();
        use smartcore::linalg::basic::arrays::Array;
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(*m.get((0, 0)), -1.0));
        assert!(close(*m.get((1, 0)), 1.0));
        assert!(close(*m.get((2, 0)), 99.0));
        assert!(close(*m.get((2, 1)), 0.0), "constant feature maps to 0");
    }

    #[test]
    fn subsample_is_stratified_and_deterministic() {
        let d = load_digits();
        let s = d.stratified_subsample(30, 1).unwrap();
        assert_eq!(s.n_samples(), 300);
        assert_eq!(s, d.stratified_subsample(30, 1).unwrap());
        for class in s.classes() {
            assert_eq!(s.y().iter().filter(|&&y| y == class).count(), 30);
        }
    }
}
