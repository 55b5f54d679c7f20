//! Small dense linear algebra for Gaussian-process models: a Cholesky factorization that adds
//! jitter to the diagonal when a kernel matrix is numerically singular, triangular solves with
//! one or many right-hand sides, the log-determinant, and the extension of a factor by new
//! rows (new points) without refactoring the old ones.
//!
//! Matrices are dense, row-major `n × n` slices; only the lower triangle of a symmetric input
//! is read. The loops are written so that the compiler can vectorize them (dot products with
//! four independent accumulators, row updates as `axpy`), which keeps a 200 × 200
//! factorization well under a millisecond without any dependency.

/// How many times [`Cholesky::factor`] retries with a ten times larger jitter.
const JITTER_TRIES: usize = 7;
/// The first jitter, relative to the mean of the diagonal. GPy's `jitchol` starts at `1e-6`
/// times the mean diagonal and tries five times (`GPy/util/linalg.py`); starting lower keeps
/// near-noiseless models (interpolation) accurate, and the seven tries reach `1e-4`.
const FIRST_RELATIVE_JITTER: f64 = 1e-10;

/// The lower-triangular Cholesky factor `L` of a symmetric positive definite matrix
/// `A + jitter·I = L·Lᵀ`.
#[derive(Clone, Debug)]
pub(crate) struct Cholesky {
    n: usize,
    /// Row-major `n × n`; the strict upper triangle is zero.
    l: Vec<f64>,
    /// The jitter that was added to the diagonal (0 when none was needed).
    jitter: f64,
}

/// `Σ aᵢ·bᵢ` over the common length, with four independent accumulators.
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut acc = [0.0f64; 4];
    for (x, y) in ca.zip(cb) {
        acc[0] += x[0] * y[0];
        acc[1] += x[1] * y[1];
        acc[2] += x[2] * y[2];
        acc[3] += x[3] * y[3];
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `y ← y − a·x` over the common length.
#[inline]
fn sub_scaled(y: &mut [f64], a: f64, x: &[f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi -= a * xi;
    }
}

/// Computes rows `start..size` of the Cholesky factor into `l` (row-major `size × size`,
/// rows `..start` already computed), row `i` of the input being `row(i)` (its first `i + 1`
/// entries are read) plus `jitter` on the diagonal. `false` when a pivot is not positive
/// (relative to its diagonal entry) or not finite: the matrix is not numerically positive
/// definite.
fn factor_rows<'a>(
    l: &mut [f64],
    size: usize,
    start: usize,
    row: impl Fn(usize) -> &'a [f64],
    jitter: f64,
) -> bool {
    for i in start..size {
        let a = row(i);
        let (done, rest) = l.split_at_mut(i * size);
        let row_i = &mut rest[..size];
        for j in 0..i {
            let row_j = &done[j * size..j * size + j];
            let s = a[j] - dot(&row_i[..j], row_j);
            row_i[j] = s / done[j * size + j];
        }
        let diag = a[i] + jitter;
        let d = diag - dot(&row_i[..i], &row_i[..i]);
        if !d.is_finite() || d <= diag.abs() * f64::EPSILON {
            return false;
        }
        row_i[i] = d.sqrt();
        for v in &mut row_i[i + 1..] {
            *v = 0.0;
        }
    }
    true
}

/// The jitters tried after a plain factorization fails: `1e-10`, `1e-9`, … `1e-4` times the
/// mean diagonal entry (`None` when that mean is not positive and finite).
fn jitters(mean_diag: f64) -> Option<impl Iterator<Item = f64>> {
    (mean_diag.is_finite() && mean_diag > 0.0).then(|| {
        (0..JITTER_TRIES).scan(mean_diag * FIRST_RELATIVE_JITTER, |j, _| {
            let current = *j;
            *j *= 10.0;
            Some(current)
        })
    })
}

impl Cholesky {
    /// Factors the symmetric `n × n` matrix `a` (row-major; the lower triangle is read).
    ///
    /// When the matrix is not numerically positive definite, a jitter is added to the
    /// diagonal and the factorization retried (GPy's `jitchol` strategy); `None` when even the
    /// largest jitter fails, when `a` has the wrong length or non-finite entries.
    pub(crate) fn factor(a: &[f64], n: usize) -> Option<Cholesky> {
        if a.len() != n * n {
            return None;
        }
        let mut l = vec![0.0; n * n];
        let row = |i: usize| &a[i * n..i * n + n];
        if factor_rows(&mut l, n, 0, row, 0.0) {
            return Some(Cholesky { n, l, jitter: 0.0 });
        }
        let mean_diag = (0..n).map(|i| a[i * n + i]).sum::<f64>() / n.max(1) as f64;
        for jitter in jitters(mean_diag)? {
            if factor_rows(&mut l, n, 0, row, jitter) {
                return Some(Cholesky { n, l, jitter });
            }
        }
        None
    }

    /// The factor of the matrix extended by `p` new rows and columns: `rows` is `p × (n + p)`
    /// row-major, row `r` holding the new point's covariances with the `n` old points and then
    /// with the new points (entries past the diagonal are ignored). The old rows are reused;
    /// the new ones get this factor's jitter, more if they need it. `None` when the extended
    /// matrix is not positive definite even with the largest jitter, or `rows` has the wrong
    /// length.
    pub(crate) fn extend(&self, rows: &[f64], p: usize) -> Option<Cholesky> {
        let (n, size) = (self.n, self.n + p);
        if rows.len() != p * size {
            return None;
        }
        let mut l = vec![0.0; size * size];
        for i in 0..n {
            l[i * size..i * size + n].copy_from_slice(&self.l[i * n..i * n + n]);
        }
        let row = |i: usize| &rows[(i - n) * size..(i - n) * size + size];
        if factor_rows(&mut l, size, n, row, self.jitter) {
            return Some(Cholesky {
                n: size,
                l,
                jitter: self.jitter,
            });
        }
        let mean_diag = (n..size).map(|i| row(i)[i]).sum::<f64>() / p.max(1) as f64;
        for jitter in jitters(mean_diag)?.filter(|&j| j > self.jitter) {
            if factor_rows(&mut l, size, n, row, jitter) {
                return Some(Cholesky { n: size, l, jitter });
            }
        }
        None
    }

    /// `ln det(A + jitter·I) = 2 Σ ln Lᵢᵢ`.
    pub(crate) fn log_det(&self) -> f64 {
        2.0 * (0..self.n)
            .map(|i| self.l[i * self.n + i].ln())
            .sum::<f64>()
    }

    /// Solves `L·x = b` in place (forward substitution); `b` has length `n`.
    pub(crate) fn solve_lower(&self, b: &mut [f64]) {
        let n = self.n;
        for i in 0..n.min(b.len()) {
            let row = &self.l[i * n..i * n + i];
            b[i] = (b[i] - dot(row, &b[..i])) / self.l[i * n + i];
        }
    }

    /// Solves `Lᵀ·x = b` in place (backward substitution); `b` has length `n`.
    pub(crate) fn solve_upper(&self, b: &mut [f64]) {
        let n = self.n.min(b.len());
        for i in (0..n).rev() {
            let row = &self.l[i * self.n..i * self.n + i];
            b[i] /= self.l[i * self.n + i];
            let bi = b[i];
            sub_scaled(&mut b[..i], bi, row);
        }
    }

    /// Solves `(A + jitter·I)·x = b` in place.
    pub(crate) fn solve(&self, b: &mut [f64]) {
        self.solve_lower(b);
        self.solve_upper(b);
    }

    /// Solves `L·X = B` in place for `m` right-hand sides at once: `b` is `n × m` row-major,
    /// column `c` holding the `c`-th right-hand side. Row operations are `axpy`s over the `m`
    /// columns, which vectorize well.
    pub(crate) fn solve_lower_many(&self, b: &mut [f64], m: usize) {
        let n = self.n;
        if b.len() != n * m {
            debug_assert_eq!(b.len(), n * m);
            return;
        }
        for i in 0..n {
            let (done, rest) = b.split_at_mut(i * m);
            let row_i = &mut rest[..m];
            let l_i = &self.l[i * n..i * n + i];
            // Four earlier rows at a time: one load and store of row i per four updates.
            let quads = l_i.chunks_exact(4);
            let tail = quads.remainder();
            for (q, l4) in quads.enumerate() {
                let k = 4 * q;
                let r0 = &done[k * m..(k + 1) * m];
                let r1 = &done[(k + 1) * m..(k + 2) * m];
                let r2 = &done[(k + 2) * m..(k + 3) * m];
                let r3 = &done[(k + 3) * m..(k + 4) * m];
                for ((((y, a), b), c), d) in row_i.iter_mut().zip(r0).zip(r1).zip(r2).zip(r3) {
                    *y -= (l4[0] * a + l4[1] * b) + (l4[2] * c + l4[3] * d);
                }
            }
            let k0 = i - tail.len();
            for (j, lik) in tail.iter().enumerate() {
                let k = k0 + j;
                sub_scaled(row_i, *lik, &done[k * m..(k + 1) * m]);
            }
            let inv = 1.0 / self.l[i * n + i];
            for v in row_i.iter_mut() {
                *v *= inv;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    /// A random symmetric positive definite matrix `M·Mᵀ + n·I`.
    fn spd(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = crate::rng::TrialRng::from_seed(seed);
        let m: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = dot(&m[i * n..i * n + n], &m[j * n..j * n + n]);
            }
            a[i * n + i] += n as f64;
        }
        a
    }

    fn mat_vec(a: &[f64], n: usize, x: &[f64]) -> Vec<f64> {
        (0..n).map(|i| dot(&a[i * n..i * n + n], x)).collect()
    }

    #[test]
    fn solves_and_log_det_match_the_matrix() {
        let n = 13;
        let a = spd(n, 1);
        let c = Cholesky::factor(&a, n).expect("positive definite");
        assert_eq!(c.jitter, 0.0);
        assert_eq!(c.n, n);
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).sin()).collect();
        let mut b = mat_vec(&a, n, &x);
        c.solve(&mut b);
        for (got, want) in b.iter().zip(&x) {
            assert!((got - want).abs() < 1e-10, "{got} vs {want}");
        }
        // det of a 2 × 2 by hand.
        let c2 = Cholesky::factor(&[4.0, 2.0, 2.0, 3.0], 2).expect("spd");
        assert!((c2.log_det() - 8.0f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn many_right_hand_sides_match_one_at_a_time() {
        let n = 9;
        let m = 5;
        let c = Cholesky::factor(&spd(n, 2), n).expect("spd");
        let mut rng = crate::rng::TrialRng::from_seed(3);
        let b: Vec<f64> = (0..n * m).map(|_| rng.normal()).collect();
        let mut many = b.clone();
        c.solve_lower_many(&mut many, m);
        for col in 0..m {
            let mut one: Vec<f64> = (0..n).map(|i| b[i * m + col]).collect();
            c.solve_lower(&mut one);
            for i in 0..n {
                assert!((one[i] - many[i * m + col]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn extension_equals_factoring_the_whole_matrix() {
        let (n, p) = (8, 3);
        let size = n + p;
        let a = spd(size, 4);
        let whole = Cholesky::factor(&a, size).expect("spd");
        let head: Vec<f64> = (0..n)
            .flat_map(|i| a[i * size..i * size + n].to_vec())
            .collect();
        let part = Cholesky::factor(&head, n).expect("spd");
        let rows = &a[n * size..];
        let extended = part.extend(rows, p).expect("spd");
        for (x, y) in extended.l.iter().zip(&whole.l) {
            assert!((x - y).abs() < 1e-12);
        }
        assert!(part.extend(&rows[1..], p).is_none(), "wrong length");
    }

    #[test]
    fn singular_matrices_get_jitter_and_garbage_gets_none() {
        // Rank one: [[1, 1], [1, 1]].
        let c = Cholesky::factor(&[1.0, 1.0, 1.0, 1.0], 2).expect("jittered");
        assert!(c.jitter > 0.0 && c.jitter < 1e-3);
        assert!(Cholesky::factor(&[f64::NAN, 0.0, 0.0, 1.0], 2).is_none());
        assert!(Cholesky::factor(&[-1.0, 0.0, 0.0, -1.0], 2).is_none());
        assert!(Cholesky::factor(&[1.0, 0.0, 0.0], 2).is_none());
        let empty = Cholesky::factor(&[], 0).expect("empty");
        assert_eq!(empty.log_det(), 0.0);
    }
}
