//! The Parzen estimator of TPE: a weighted mixture whose components are product kernels, one
//! per observation plus a prior component, on the "model scale" of each dimension (logarithm
//! for log ranges, grid for stepped and integer ranges, index for categoricals).

use crate::math::{log_normal_mass, log_sum_exp, NormalTail};
use crate::rng::TrialRng;

/// ½·ln(2π).
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// How one dimension is modelled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum DimKind {
    /// A truncated normal on `[low, high]`.
    Continuous,
    /// Grid points `origin + k·step`, `k = 0..n`; each kernel gives a point the normal mass
    /// of `[x − step/2, x + step/2]`, renormalized over the widened range `[low, high]`.
    Discrete { origin: f64, step: f64, n: usize },
    /// `n` choices, by index.
    Categorical { n: usize },
}

/// One dimension's scale: its kind and its bounds on the model scale (for discrete
/// dimensions, widened by half a step on each side).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Dim {
    pub kind: DimKind,
    pub low: f64,
    pub high: f64,
}

impl Dim {
    /// Rounds a model-scale value to the nearest grid point (discrete) or clamps it.
    pub fn snap(&self, x: f64) -> f64 {
        match self.kind {
            DimKind::Continuous => x.clamp(self.low, self.high),
            DimKind::Discrete { origin, step, n } => {
                let k = ((x - origin) / step).round().clamp(0.0, (n - 1) as f64);
                origin + k * step
            }
            DimKind::Categorical { n } => x.round().clamp(0.0, (n - 1) as f64),
        }
    }
}

/// How kernel widths are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bandwidth {
    /// With the neighbour rule, whether the range ends count as neighbours of the extreme
    /// kernels.
    pub consider_endpoints: bool,
    /// Clip σ to `[(high − low)/min(100, 1 + n_kernels), high − low]`.
    pub magic_clip: bool,
}

/// Per-dimension kernel parameters, one entry per component (the prior last).
#[derive(Debug)]
struct DimKernels {
    dim: Dim,
    mu: Vec<f64>,
    sigma: Vec<f64>,
    inv_sigma: Vec<f64>,
    /// Categorical only: row-major `components × n` probabilities and their logarithms.
    probs: Vec<f64>,
    log_probs: Vec<f64>,
}

impl Default for DimKernels {
    fn default() -> Self {
        DimKernels {
            dim: Dim {
                kind: DimKind::Continuous,
                low: 0.0,
                high: 0.0,
            },
            mu: Vec::new(),
            sigma: Vec::new(),
            inv_sigma: Vec::new(),
            probs: Vec::new(),
            log_probs: Vec::new(),
        }
    }
}

/// A weighted mixture of product kernels.
#[derive(Debug, Default)]
pub(crate) struct ParzenEstimator {
    /// Normalized component weights (observations in order, then the prior).
    weights: Vec<f64>,
    /// Cumulative weights, for drawing a component.
    cumulative: Vec<f64>,
    /// Per component: log weight plus every per-dimension constant (normal normalizers and
    /// truncation masses), so scoring a point adds only the point-dependent terms.
    log_const: Vec<f64>,
    dims: Vec<DimKernels>,
    /// [`Divisor`]'s buffer, kept between fits.
    divisor: Vec<f64>,
    /// Scratch for [`neighbour_sigmas`].
    order: Vec<usize>,
}

/// Per component, a product of normalizing factors (truncation masses and kernel widths)
/// kept in linear space and moved into the log constants only when it leaves a safe range:
/// one logarithm per component instead of one per component and dimension, which was most
/// of the cost of building an estimator over many trials.
struct Divisor {
    product: Vec<f64>,
}

impl Divisor {
    fn new(mut buffer: Vec<f64>, n: usize) -> Self {
        buffer.clear();
        buffer.resize(n, 1.0);
        Divisor { product: buffer }
    }

    /// Divides component `c`'s density by `factor` (positive and finite).
    #[inline]
    fn multiply(&mut self, c: usize, factor: f64, log_const: &mut [f64]) {
        let p = &mut self.product[c];
        *p *= factor;
        if !(1e-200..=1e200).contains(p) {
            log_const[c] -= p.ln();
            *p = 1.0;
        }
    }

    fn flush_all(&mut self, log_const: &mut [f64]) {
        for (l, p) in log_const.iter_mut().zip(&mut self.product) {
            *l -= p.ln();
            *p = 1.0;
        }
    }
}

/// The bandwidths of the neighbour rule for `mus` on `[low, high]`, with the prior mean
/// inserted among the neighbours. `sorted`, when given, lists the indices of `mus` in
/// ascending order (ties by index), which spares the sort: the sampler keeps that order
/// between asks. `order` is scratch.
pub(crate) fn neighbour_sigmas(
    mus: &[f64],
    sorted: Option<&[usize]>,
    low: f64,
    high: f64,
    consider_endpoints: bool,
    order: &mut Vec<usize>,
    out: &mut Vec<f64>,
) {
    let prior_mu = 0.5 * (low + high);
    let n = mus.len() + 1;
    order.clear();
    match sorted {
        Some(sorted) => {
            debug_assert_eq!(sorted.len(), mus.len());
            // The prior goes after every mean ≤ it, as a stable sort would put it.
            let at = sorted.partition_point(|&i| mus[i] <= prior_mu);
            order.extend_from_slice(&sorted[..at]);
            order.push(mus.len());
            order.extend_from_slice(&sorted[at..]);
        }
        None => {
            order.extend(0..n);
            let value = |i: usize| if i < mus.len() { mus[i] } else { prior_mu };
            order.sort_by(|&a, &b| value(a).total_cmp(&value(b)));
        }
    }
    let value = |j: usize| match j {
        0 => low,
        j if j == n + 1 => high,
        j => {
            let i = order[j - 1];
            if i < mus.len() {
                mus[i]
            } else {
                prior_mu
            }
        }
    };
    out.clear();
    out.resize(n, 0.0);
    for j in 1..=n {
        let (left, mid, right) = (value(j - 1), value(j), value(j + 1));
        let mut sigma = (mid - left).max(right - mid);
        if !consider_endpoints && n >= 2 {
            if j == 1 {
                sigma = right - mid;
            } else if j == n {
                sigma = mid - left;
            }
        }
        out[order[j - 1]] = sigma;
    }
    out.truncate(mus.len());
}

/// Clips kernel widths into `[(high − low)/min(100, 1 + n_kernels), high − low]`.
pub(crate) fn magic_clip(sigma: &mut [f64], range: f64, n_kernels: usize) {
    let min = range / (1.0 + n_kernels as f64).min(100.0);
    for s in sigma {
        *s = s.clamp(min, range);
    }
}

/// The categorical kernel: row `i < n_obs` puts `prior_weight/n_kernels` on every choice plus
/// 1 on the observed one; the prior row is uniform; rows normalized. Row-major.
pub(crate) fn categorical_kernel(observed: &[f64], n: usize, prior_weight: f64, p: &mut Vec<f64>) {
    let n_kernels = observed.len() + 1;
    let base = prior_weight / n_kernels as f64;
    p.clear();
    for &obs in observed {
        let row_sum = base * n as f64 + 1.0;
        let hit = obs as usize;
        p.extend((0..n).map(|c| (base + if c == hit { 1.0 } else { 0.0 }) / row_sum));
    }
    p.extend(std::iter::repeat_n(1.0 / n as f64, n));
}

impl ParzenEstimator {
    /// Builds the estimator from `n_obs` observations (row-major, `dims.len()` values each,
    /// on the model scale) with unnormalized `obs_weights`, plus a prior component of weight
    /// `prior_weight`.
    #[cfg(test)]
    pub fn new(
        dims: &[Dim],
        observations: &[f64],
        obs_weights: &[f64],
        prior_weight: f64,
        bandwidth: Bandwidth,
    ) -> Self {
        let mut estimator = ParzenEstimator::default();
        estimator.fit(
            dims,
            observations,
            None,
            obs_weights,
            prior_weight,
            bandwidth,
        );
        estimator
    }

    /// [`ParzenEstimator::new`] into `self`, reusing its buffers: an ask over thousands of
    /// trials then allocates nothing (fresh buffers each time cost page faults that showed
    /// in profiles).
    ///
    /// `orders`, when given, holds per dimension the observation indices sorted by value
    /// (ties by index; ignored for categorical dimensions).
    #[allow(clippy::too_many_arguments)]
    pub fn fit(
        &mut self,
        dims: &[Dim],
        observations: &[f64],
        orders: Option<&[Vec<usize>]>,
        obs_weights: &[f64],
        prior_weight: f64,
        bandwidth: Bandwidth,
    ) {
        let d = dims.len();
        let n_obs = obs_weights.len();
        debug_assert_eq!(observations.len(), n_obs * d);
        let n_comp = n_obs + 1;
        let total: f64 = obs_weights.iter().sum::<f64>() + prior_weight;
        self.weights.clear();
        self.weights
            .extend(obs_weights.iter().chain([&prior_weight]).map(|w| w / total));
        self.cumulative.clear();
        let mut acc = 0.0;
        for &w in &self.weights {
            acc += w;
            self.cumulative.push(acc);
        }
        self.log_const.clear();
        self.log_const.extend(self.weights.iter().map(|w| w.ln()));
        let mut divisor = Divisor::new(std::mem::take(&mut self.divisor), n_comp);
        let tail = NormalTail::get();
        self.dims.resize_with(d, DimKernels::default);
        for (j, (&dim, k)) in dims.iter().zip(&mut self.dims).enumerate() {
            let range = dim.high - dim.low;
            k.dim = dim;
            for v in [
                &mut k.mu,
                &mut k.sigma,
                &mut k.inv_sigma,
                &mut k.probs,
                &mut k.log_probs,
            ] {
                v.clear();
            }
            k.mu.extend((0..n_obs).map(|i| observations[i * d + j]));
            match dim.kind {
                DimKind::Categorical { n } => {
                    categorical_kernel(&k.mu, n, prior_weight, &mut k.probs);
                    k.log_probs.extend(k.probs.iter().map(|p| p.ln()));
                    k.mu.clear();
                }
                DimKind::Continuous | DimKind::Discrete { .. } => {
                    // Optuna 5.0 uses the neighbour rule for joint (multivariate) estimators
                    // too; v4's joint rule σ = 0.2·n^(−1/(d+4))·(high − low) made every kernel
                    // wide and converged far more slowly (see reference/optuna.md §2.2).
                    neighbour_sigmas(
                        &k.mu,
                        orders.map(|o| o[j].as_slice()),
                        dim.low,
                        dim.high,
                        bandwidth.consider_endpoints,
                        &mut self.order,
                        &mut k.sigma,
                    );
                    if bandwidth.magic_clip {
                        magic_clip(&mut k.sigma, range, n_comp);
                    }
                    k.mu.push(0.5 * (dim.low + dim.high));
                    k.sigma.push(range);
                    for s in &mut k.sigma {
                        // A zero-width range (never sampled, but guard anyway).
                        *s = s.max(f64::MIN_POSITIVE.sqrt());
                    }
                    k.inv_sigma.extend(k.sigma.iter().map(|s| 1.0 / s));
                    let continuous = dim.kind == DimKind::Continuous;
                    for c in 0..n_comp {
                        let inv = k.inv_sigma[c];
                        let (a, b) = ((dim.low - k.mu[c]) * inv, (dim.high - k.mu[c]) * inv);
                        let mut factor = 1.0;
                        match tail.wide_mass(a, b) {
                            Some(mass) => factor = mass,
                            None => self.log_const[c] -= log_normal_mass(a, b),
                        }
                        if continuous {
                            factor *= k.sigma[c];
                            self.log_const[c] -= HALF_LN_2PI;
                        }
                        divisor.multiply(c, factor, &mut self.log_const);
                    }
                }
            }
        }
        divisor.flush_all(&mut self.log_const);
        self.divisor = divisor.product;
    }

    /// The number of mixture components (observations plus the prior).
    #[cfg(test)]
    pub fn n_components(&self) -> usize {
        self.weights.len()
    }

    /// Draws `n` points (row-major into `out`, replacing its contents); discrete and
    /// categorical values land exactly on their grid.
    pub fn sample(&self, rng: &mut TrialRng, n: usize, out: &mut Vec<f64>) {
        out.clear();
        let last = self.weights.len() - 1;
        for _ in 0..n {
            let u = rng.uniform() * self.cumulative[last];
            let c = self.cumulative.partition_point(|&w| w <= u).min(last);
            for k in &self.dims {
                let x = match k.dim.kind {
                    DimKind::Categorical { n } => {
                        let row = &k.probs[c * n..(c + 1) * n];
                        let mut u = rng.uniform();
                        let mut pick = n - 1;
                        for (i, &p) in row.iter().enumerate() {
                            if u < p {
                                pick = i;
                                break;
                            }
                            u -= p;
                        }
                        pick as f64
                    }
                    _ => k.dim.snap(truncated_normal(
                        rng, k.mu[c], k.sigma[c], k.dim.low, k.dim.high,
                    )),
                };
                out.push(x);
            }
        }
    }

    /// The log-density (log-mass for discrete dimensions) of each point in `points`
    /// (row-major), written to `out`. `scratch` is reused between calls.
    pub fn log_pdf(&self, points: &[f64], out: &mut Vec<f64>, scratch: &mut Vec<f64>) {
        let d = self.dims.len();
        out.clear();
        for x in points.chunks_exact(d) {
            scratch.clear();
            scratch.extend_from_slice(&self.log_const);
            for (k, &xj) in self.dims.iter().zip(x) {
                match k.dim.kind {
                    DimKind::Continuous => {
                        for ((acc, &mu), &inv) in scratch.iter_mut().zip(&k.mu).zip(&k.inv_sigma) {
                            let z = (xj - mu) * inv;
                            *acc -= 0.5 * z * z;
                        }
                    }
                    DimKind::Discrete { step, .. } => {
                        let (lo, hi) = (xj - 0.5 * step, xj + 0.5 * step);
                        for ((acc, &mu), &inv) in scratch.iter_mut().zip(&k.mu).zip(&k.inv_sigma) {
                            *acc += log_normal_mass((lo - mu) * inv, (hi - mu) * inv);
                        }
                    }
                    DimKind::Categorical { n } => {
                        let idx = xj as usize;
                        for (c, acc) in scratch.iter_mut().enumerate() {
                            *acc += k.log_probs[c * n + idx];
                        }
                    }
                }
            }
            out.push(log_sum_exp(scratch));
        }
    }
}

/// A normal draw restricted to `[low, high]`, by rejection: kernel means lie inside the range
/// and widths are at most its length, so at least about a third of the draws are accepted.
fn truncated_normal(rng: &mut TrialRng, mu: f64, sigma: f64, low: f64, high: f64) -> f64 {
    for _ in 0..256 {
        let x = mu + sigma * rng.normal();
        if x >= low && x <= high {
            return x;
        }
    }
    low + rng.uniform() * (high - low)
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    fn bw() -> Bandwidth {
        Bandwidth {
            consider_endpoints: false,
            magic_clip: true,
        }
    }

    #[test]
    fn neighbour_rule_without_endpoints() {
        // Sorted with the prior mean 5: [1, 2, 5, 9] between ends 0 and 10.
        // Gaps: 1→ max(1,1) but first uses the right gap 1; 2 → max(1, 3) = 3;
        // 5 (prior, dropped) → 4; 9 → last uses the left gap 4.
        let (mut s, mut order) = (Vec::new(), Vec::new());
        for sorted in [None, Some(&[1, 2, 0][..])] {
            neighbour_sigmas(
                &[9.0, 1.0, 2.0],
                sorted,
                0.0,
                10.0,
                false,
                &mut order,
                &mut s,
            );
            assert_eq!(s, vec![4.0, 1.0, 3.0]);
            neighbour_sigmas(
                &[9.0, 1.0, 2.0],
                sorted,
                0.0,
                10.0,
                true,
                &mut order,
                &mut s,
            );
            assert_eq!(s, vec![4.0, 1.0, 3.0]);
        }
        neighbour_sigmas(&[0.5], None, 0.0, 10.0, true, &mut order, &mut s);
        assert_eq!(s, vec![4.5]);
        // Without endpoints the extreme kernels take their inner gap: sorted [0.5, 5 (prior)].
        neighbour_sigmas(&[0.5], Some(&[0]), 0.0, 10.0, false, &mut order, &mut s);
        assert_eq!(s, vec![4.5]);
        // A mean equal to the prior's sorts before it.
        neighbour_sigmas(
            &[5.0, 7.0],
            Some(&[0, 1]),
            0.0,
            10.0,
            true,
            &mut order,
            &mut s,
        );
        assert_eq!(s, vec![5.0, 3.0]);
    }

    #[test]
    fn magic_clip_bounds() {
        let mut s = vec![0.001, 5.0, 50.0];
        magic_clip(&mut s, 10.0, 4);
        assert_eq!(s, vec![2.0, 5.0, 10.0]);
        let mut s = vec![0.0];
        magic_clip(&mut s, 10.0, 500);
        assert_eq!(s, vec![0.1]);
    }

    #[test]
    fn categorical_kernel_rows() {
        // Two observations, three choices, prior weight 1: base 1/3 per choice.
        let mut p = Vec::new();
        categorical_kernel(&[0.0, 2.0], 3, 1.0, &mut p);
        let row_sum = 1.0 + 3.0 * (1.0 / 3.0);
        let (hit, miss) = ((1.0 / 3.0 + 1.0) / row_sum, (1.0 / 3.0) / row_sum);
        let want = [
            hit,
            miss,
            miss,
            miss,
            miss,
            hit,
            1.0 / 3.0,
            1.0 / 3.0,
            1.0 / 3.0,
        ];
        for (a, b) in p.iter().zip(want) {
            assert!((a - b).abs() < 1e-15);
        }
    }

    #[test]
    fn continuous_density_integrates_to_one() {
        let dims = [Dim {
            kind: DimKind::Continuous,
            low: -1.0,
            high: 3.0,
        }];
        let pe = ParzenEstimator::new(&dims, &[0.0, 2.5, 2.9], &[1.0, 1.0, 1.0], 1.0, bw());
        assert_eq!(pe.n_components(), 4);
        let n = 4000;
        let h = 4.0 / n as f64;
        let pts: Vec<f64> = (0..n).map(|i| -1.0 + (i as f64 + 0.5) * h).collect();
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        pe.log_pdf(&pts, &mut out, &mut scratch);
        let integral: f64 = out.iter().map(|l| l.exp() * h).sum();
        assert!((integral - 1.0).abs() < 1e-5, "{integral}");
    }

    #[test]
    fn discrete_masses_sum_to_one_and_samples_on_grid() {
        // Integers 0..=4 on the widened range [-0.5, 4.5].
        let dims = [Dim {
            kind: DimKind::Discrete {
                origin: 0.0,
                step: 1.0,
                n: 5,
            },
            low: -0.5,
            high: 4.5,
        }];
        let pe = ParzenEstimator::new(&dims, &[1.0, 4.0], &[1.0, 1.0], 1.0, bw());
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        pe.log_pdf(&[0.0, 1.0, 2.0, 3.0, 4.0], &mut out, &mut scratch);
        let total: f64 = out.iter().map(|l| l.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
        let mut rng = TrialRng::from_seed(1);
        let mut s = Vec::new();
        pe.sample(&mut rng, 200, &mut s);
        assert!(s
            .iter()
            .all(|x| x.fract() == 0.0 && (0.0..=4.0).contains(x)));
    }

    #[test]
    fn truncated_normal_log_mass_known_value() {
        // One observation at 0 on [-1, 1] with σ clipped to at least 2/3 (range 2, 2 kernels).
        // Kernel σ by the neighbour rule: sorted [0 (obs), 0 (prior)], gaps → 0, clip → 2/3.
        // Density at 0 of the observation kernel: φ(0)/(σ·(Φ(1.5) − Φ(−1.5))).
        let dims = [Dim {
            kind: DimKind::Continuous,
            low: -1.0,
            high: 1.0,
        }];
        let pe = ParzenEstimator::new(&dims, &[0.0], &[1.0], 1e-12, bw());
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        pe.log_pdf(&[0.0], &mut out, &mut scratch);
        let sigma = 2.0 / 3.0;
        let mass = 0.866_385_597_462_283_8; // Φ(1.5) − Φ(−1.5)
        let want = (1.0 / (2.0 * std::f64::consts::PI).sqrt() / (sigma * mass)).ln();
        assert!((out[0] - want).abs() < 1e-6, "{} vs {want}", out[0]);
    }

    #[test]
    fn categorical_sampling_follows_the_kernel() {
        let dims = [Dim {
            kind: DimKind::Categorical { n: 3 },
            low: 0.0,
            high: 2.0,
        }];
        let obs = vec![1.0; 30];
        let pe = ParzenEstimator::new(&dims, &obs, &[1.0; 30], 1.0, bw());
        let mut rng = TrialRng::from_seed(5);
        let mut s = Vec::new();
        pe.sample(&mut rng, 1000, &mut s);
        let ones = s.iter().filter(|&&x| x == 1.0).count();
        assert!(ones > 850, "{ones}");
    }
}
