//! Multi-fidelity benchmark problems: a trial runs step by step (an epoch, a fidelity level),
//! each step has a value (minimized) and a cost in simulated seconds, so pruners and
//! schedulers can be compared against consumed budget and simulated wall-clock time without
//! training anything (see [`crate::simulate`]).
//!
//! - MFHartmann3/6 as in mfpbench (`mf-prior-bench` 1.10.0, `mfpbench/synthetic/hartmann`),
//!   with its four correlation presets.
//! - Branin-MF, the first fidelity of Kandasamy, Dasarathy, Schneider & Póczos,
//!   "Multi-fidelity Bayesian optimisation with continuous approximations" (ICML 2017),
//!   as in dragonfly's `branin_z_x`.
//! - A parametric learning-curve simulator (ours): exponential curves whose asymptote is
//!   Hartmann-6 and whose rate is another smooth function, so curves cross.

use crate::synthetic::{hartmann3_with, hartmann6_with, HARTMANN_ALPHA};
use ferrotune::rng::TrialRng;
use ferrotune::{Params, Trial};
use std::collections::BTreeSet;
use std::f64::consts::PI;
use std::path::Path;

/// A problem observed at increasing fidelities `1..=max_steps()`: step `z` of a trial is one
/// unit of work (an epoch), whose value [`evaluate_at`](FidelityProblem::evaluate_at) the
/// trial reports, and whose [`cost`](FidelityProblem::cost) advances the simulated clock.
pub trait FidelityProblem: Send + Sync {
    /// The name used in records and reports (`mfh3_good`, `branin_mf`, `lc_hartmann6`).
    fn name(&self) -> String;
    /// Suggests every parameter the point needs.
    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()>;
    /// The highest step (full fidelity); steps run from 1 to it.
    fn max_steps(&self) -> u64;
    /// The value after `step` steps at the suggested point (minimized); `noise_seed` makes
    /// noisy problems repeatable.
    fn evaluate_at(&self, params: &Params, step: u64, noise_seed: u64) -> f64;
    /// Simulated seconds that running `step` alone takes at `params` (positive).
    fn cost(&self, params: &Params, step: u64) -> f64;
    /// The known minimum at full fidelity, when there is one.
    fn optimum(&self) -> Option<f64>;
}

fn coordinates(params: &Params, dim: usize) -> Vec<f64> {
    (0..dim)
        .map(|i| {
            params
                .get(&format!("x{i}"))
                .and_then(|v| v.as_f64())
                .unwrap_or(f64::NAN)
        })
        .collect()
}

fn suggest_box(trial: &mut Trial<'_>, bounds: &[(f64, f64)]) -> ferrotune::Result<()> {
    for (i, &(lo, hi)) in bounds.iter().enumerate() {
        trial.suggest_float(&format!("x{i}"), lo, hi)?;
    }
    Ok(())
}

/// A deterministic seed from a point, a step and a noise seed (FNV-1a over their bits, then a
/// SplitMix64 finalizer): mfpbench seeds its noise with Python's `hash` of the
/// configuration, which is not stable across processes, so ours uses a fixed hash instead.
fn point_seed(x: &[f64], step: u64, noise_seed: u64) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for word in x.iter().map(|v| v.to_bits()).chain([step, noise_seed]) {
        for byte in word.to_le_bytes() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    let mut z = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Per-step cost from a cumulative one: `cumulative(step) − cumulative(step − 1)`, with
/// nothing spent before step 1, so a trial's steps add up to `cumulative(max)`.
fn step_cost(cumulative: impl Fn(u64) -> f64, step: u64) -> f64 {
    let before = if step <= 1 { 0.0 } else { cumulative(step - 1) };
    cumulative(step) - before
}

/// MFHartmann's correlation between low and high fidelity, as mfpbench's presets name it:
/// `(bias, noise)` = good (2.5, 2.0), moderate (3.0, 3.0), bad (3.5, 4.0), terrible
/// (4.0, 5.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Correlation {
    /// bias 2.5, noise 2.0.
    Good,
    /// bias 3.0, noise 3.0.
    Moderate,
    /// bias 3.5, noise 4.0.
    Bad,
    /// bias 4.0, noise 5.0.
    Terrible,
}

impl Correlation {
    /// Every preset.
    pub const ALL: [Correlation; 4] = [
        Correlation::Good,
        Correlation::Moderate,
        Correlation::Bad,
        Correlation::Terrible,
    ];

    /// The preset's name in problem names.
    pub fn name(self) -> &'static str {
        match self {
            Correlation::Good => "good",
            Correlation::Moderate => "moderate",
            Correlation::Bad => "bad",
            Correlation::Terrible => "terrible",
        }
    }

    /// `(bias, noise)`.
    pub fn bias_noise(self) -> (f64, f64) {
        match self {
            Correlation::Good => (2.5, 2.0),
            Correlation::Moderate => (3.0, 3.0),
            Correlation::Bad => (3.5, 4.0),
            Correlation::Terrible => (4.0, 5.0),
        }
    }
}

/// mfpbench's multi-fidelity Hartmann (3-d or 6-d, on [0, 1]^d), fidelity `z ∈ 1..=100`:
/// with `s = ln z / ln 100`, the weights become `α' = α − bias·(1 − s)`, and the value is
/// Hartmann with `α'` plus `|N(0, 1)|·noise·(1 − s)` (seeded by the point, `z` and the noise
/// seed). At `z = 100` it is plain Hartmann, noise-free. Running up to `z` costs
/// `0.05 + 0.95·(z/100)²` simulated seconds in all, so step `z` alone costs the difference.
#[derive(Clone, Copy, Debug)]
pub struct MfHartmann {
    /// 3 or 6.
    pub dim: usize,
    /// How well low fidelities predict the full one.
    pub correlation: Correlation,
}

/// MFHartmann's highest fidelity.
const MFH_MAX: u64 = 100;

impl MfHartmann {
    fn cumulative_cost(z: u64) -> f64 {
        let r = z as f64 / MFH_MAX as f64;
        0.05 + 0.95 * r * r
    }
}

impl FidelityProblem for MfHartmann {
    fn name(&self) -> String {
        format!("mfh{}_{}", self.dim, self.correlation.name())
    }
    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()> {
        suggest_box(trial, &vec![(0.0, 1.0); self.dim])
    }
    fn max_steps(&self) -> u64 {
        MFH_MAX
    }
    fn evaluate_at(&self, params: &Params, step: u64, noise_seed: u64) -> f64 {
        let x = coordinates(params, self.dim);
        let z = step.clamp(1, MFH_MAX);
        let s = (z as f64).ln() / (MFH_MAX as f64).ln();
        let (bias, noise) = self.correlation.bias_noise();
        let alpha = HARTMANN_ALPHA.map(|a| a - bias * (1.0 - s));
        let h = if self.dim == 3 {
            hartmann3_with(&x, &alpha)
        } else {
            hartmann6_with(&x, &alpha)
        };
        if z == MFH_MAX {
            return h;
        }
        let draw = TrialRng::from_seed(point_seed(&x, z, noise_seed))
            .normal()
            .abs();
        h + draw * noise * (1.0 - s)
    }
    fn cost(&self, _params: &Params, step: u64) -> f64 {
        step_cost(MfHartmann::cumulative_cost, step.clamp(1, MFH_MAX))
    }
    fn optimum(&self) -> Option<f64> {
        Some(if self.dim == 3 { -3.86278 } else { -3.32237 })
    }
}

/// Branin-MF of Kandasamy et al. (2017), fidelity `z₁` only (`z₂ = z₃ = 1`): step `k` of
/// `1..=100` is `z₁ = k/100`, and `b = 5.1/(4π²) − 0.01·(1 − z₁)`; at `z₁ = 1` it is Branin
/// (minimum 0.397887). Running up to `z₁` costs `0.05 + 0.95·z₁^1.5` in all. Noise-free.
#[derive(Clone, Copy, Debug, Default)]
pub struct BraninMf;

/// Branin-MF's number of steps.
const BRANIN_MF_MAX: u64 = 100;

impl FidelityProblem for BraninMf {
    fn name(&self) -> String {
        "branin_mf".to_owned()
    }
    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()> {
        suggest_box(trial, &[(-5.0, 10.0), (0.0, 15.0)])
    }
    fn max_steps(&self) -> u64 {
        BRANIN_MF_MAX
    }
    fn evaluate_at(&self, params: &Params, step: u64, _noise_seed: u64) -> f64 {
        let x = coordinates(params, 2);
        let z1 = step.clamp(1, BRANIN_MF_MAX) as f64 / BRANIN_MF_MAX as f64;
        let b = 5.1 / (4.0 * PI * PI) - 0.01 * (1.0 - z1);
        let (c, r, s, t) = (5.0 / PI, 6.0, 10.0, 1.0 / (8.0 * PI));
        (x[1] - b * x[0] * x[0] + c * x[0] - r).powi(2) + s * (1.0 - t) * x[0].cos() + s
    }
    fn cost(&self, _params: &Params, step: u64) -> f64 {
        let cumulative = |k: u64| 0.05 + 0.95 * (k as f64 / BRANIN_MF_MAX as f64).powf(1.5);
        step_cost(cumulative, step.clamp(1, BRANIN_MF_MAX))
    }
    fn optimum(&self) -> Option<f64> {
        Some(0.397887)
    }
}

/// Simulated learning curves (ours, after the parametric curves of Domhan, Springenberg &
/// Hutter, "Speeding up automatic hyperparameter optimization of deep neural networks by
/// extrapolation of learning curves", IJCAI 2015): at epoch `e ∈ 1..=50`,
/// `y(e) = y∞(x) + (y₀ − y∞(x))·exp(−k(x)·e) + ε`, with `y₀ = 1`, `y∞` = Hartmann-6 on
/// [0, 1]⁶ (minimum −3.32237), a rate `k(x) = 0.03·30^u(x)` between 0.03 and 0.9 with
/// `u(x) = (1 + cos(π(x₁ + x₃ + x₅)))/2`, and noise `ε ~ N(0, 0.01²)` seeded by the point,
/// the epoch and the noise seed. Slow learners with good asymptotes start behind fast ones
/// with poor asymptotes, so curves cross and early stopping can be wrong. One epoch costs
/// `(0.5 + x₀)/50` simulated seconds (a whole curve 0.5 to 1.5 s), so configurations differ
/// in cost too.
#[derive(Clone, Copy, Debug, Default)]
pub struct LearningCurves;

/// The simulated curves' epochs.
const LC_EPOCHS: u64 = 50;
/// The simulated curves' starting value.
const LC_Y0: f64 = 1.0;
/// The simulated curves' noise.
const LC_SIGMA: f64 = 0.01;

impl LearningCurves {
    /// The rate `k(x)` of the curve at `x`.
    fn rate(x: &[f64]) -> f64 {
        let u = (1.0 + (PI * (x[1] + x[3] + x[5])).cos()) / 2.0;
        0.03 * 30f64.powf(u)
    }
}

impl FidelityProblem for LearningCurves {
    fn name(&self) -> String {
        "lc_hartmann6".to_owned()
    }
    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()> {
        suggest_box(trial, &[(0.0, 1.0); 6])
    }
    fn max_steps(&self) -> u64 {
        LC_EPOCHS
    }
    fn evaluate_at(&self, params: &Params, step: u64, noise_seed: u64) -> f64 {
        let x = coordinates(params, 6);
        let e = step.clamp(1, LC_EPOCHS);
        let y_inf = hartmann6_with(&x, &HARTMANN_ALPHA);
        let curve = y_inf + (LC_Y0 - y_inf) * (-LearningCurves::rate(&x) * e as f64).exp();
        curve + LC_SIGMA * TrialRng::from_seed(point_seed(&x, e, noise_seed)).normal()
    }
    fn cost(&self, params: &Params, _step: u64) -> f64 {
        let x0 = coordinates(params, 1)[0];
        let x0 = if x0.is_finite() {
            x0.clamp(0.0, 1.0)
        } else {
            0.5
        };
        (0.5 + x0) / LC_EPOCHS as f64
    }
    fn optimum(&self) -> Option<f64> {
        None
    }
}

/// Counting Ones (Falkner, Klein & Hutter, "BOHB: Robust and efficient hyperparameter
/// optimization at scale", ICML 2018, §5.1; HPOlib1.5's `counting_ones`): `d/2` binary
/// categoricals and `d/2` continuous `x_j ∈ [0, 1]`, value
/// `−(Σ cat + Σ_j mean of b Bernoulli(x_j) draws)`, minimum `−d` (every categorical 1,
/// every `x_j = 1`). The budget `b` runs from `576/d` to `93312/d` draws per continuous
/// variable, a ratio of 162: step `k ∈ 1..=162` has drawn `k·576/d` samples in all, each
/// step adding `576/d` fresh ones to the same running means (so a trial's steps are one
/// growing estimate, as epochs are one training run), seeded by the point, the step and
/// the noise seed. The value is noisy at every budget (the noise-free value is
/// `−(Σ cat + Σ x_j)`); each step costs the same, a whole trial 1 simulated second.
#[derive(Clone, Copy, Debug)]
pub struct CountingOnes {
    /// Total dimension `d` (even): `d/2` categoricals and `d/2` floats.
    pub dim: usize,
}

/// Counting Ones' steps: `93312 / 576`.
const COUNTING_ONES_STEPS: u64 = 162;

impl CountingOnes {
    /// Draws per continuous variable added by each step.
    fn draws_per_step(&self) -> u64 {
        (576 / self.dim.max(1)) as u64
    }

    fn half(&self) -> usize {
        self.dim / 2
    }
}

impl FidelityProblem for CountingOnes {
    fn name(&self) -> String {
        format!("counting_ones_{}", self.dim)
    }
    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()> {
        for i in 0..self.half() {
            trial.suggest_categorical(&format!("c{i}"), &[0_i64, 1])?;
        }
        suggest_box(trial, &vec![(0.0, 1.0); self.half()])
    }
    fn max_steps(&self) -> u64 {
        COUNTING_ONES_STEPS
    }
    fn evaluate_at(&self, params: &Params, step: u64, noise_seed: u64) -> f64 {
        let ones: f64 = (0..self.half())
            .map(|i| {
                params
                    .get(&format!("c{i}"))
                    .and_then(|v| v.as_i64())
                    .map_or(f64::NAN, |c| c as f64)
            })
            .sum();
        let x = coordinates(params, self.half());
        let steps = step.clamp(1, COUNTING_ONES_STEPS);
        let per_step = self.draws_per_step();
        let mut hits = vec![0_u64; x.len()];
        for k in 1..=steps {
            let mut rng = TrialRng::from_seed(point_seed(&x, k, noise_seed));
            for (h, &p) in hits.iter_mut().zip(&x) {
                *h += (0..per_step).filter(|_| rng.uniform() < p).count() as u64;
            }
        }
        let draws = (steps * per_step) as f64;
        -(ones + hits.iter().map(|&h| h as f64 / draws).sum::<f64>())
    }
    fn cost(&self, _params: &Params, _step: u64) -> f64 {
        1.0 / COUNTING_ONES_STEPS as f64
    }
    fn optimum(&self) -> Option<f64> {
        Some(-(self.dim as f64))
    }
}

/// Every multi-fidelity problem: MFHartmann 3 and 6 at the four presets, Branin-MF, the
/// learning curves and Counting Ones with 8 and 32 dimensions.
pub fn fidelity_suite() -> Vec<Box<dyn FidelityProblem>> {
    let mut all: Vec<Box<dyn FidelityProblem>> = Vec::new();
    for dim in [3, 6] {
        for correlation in Correlation::ALL {
            all.push(Box::new(MfHartmann { dim, correlation }));
        }
    }
    all.push(Box::new(BraninMf));
    all.push(Box::new(LearningCurves));
    for dim in [8, 32] {
        all.push(Box::new(CountingOnes { dim }));
    }
    all
}

/// The names of the problems [`find_fidelity_problems`] builds on request only, beside
/// [`fidelity_suite`]: the digits network (it trains real networks) and the LCBench
/// surrogate tasks (`lcbench` for all six; feature `lcbench` and the benchmark data).
pub const REAL_FIDELITY_PROBLEMS: [&str; 8] = [
    "digits_net",
    "lcbench",
    "lcbench_3945",
    "lcbench_7593",
    "lcbench_34539",
    "lcbench_126025",
    "lcbench_146212",
    "lcbench_167104",
];

/// The problems named in `names` (the [`fidelity_suite`] when empty), each once:
/// the synthetic ones, `digits_net`, and the LCBench tasks (`lcbench_<task>`, or `lcbench`
/// for all of [`REAL_FIDELITY_PROBLEMS`]' tasks), read from `data` (the benchmark data
/// folder) with the feature `lcbench`.
pub fn find_fidelity_problems(
    names: &[String],
    data: Option<&Path>,
) -> Result<Vec<Box<dyn FidelityProblem>>, FidelityFindError> {
    let mut suite = fidelity_suite();
    if names.is_empty() {
        return Ok(suite);
    }
    let mut chosen: Vec<Box<dyn FidelityProblem>> = Vec::with_capacity(names.len());
    for name in names {
        let name = name.trim();
        if let Some(i) = suite.iter().position(|p| p.name() == name) {
            chosen.push(suite.swap_remove(i));
        } else if name == "digits_net" {
            chosen.push(Box::new(crate::digits_net::DigitsNet::new()?));
        } else if name == "lcbench" || name.starts_with("lcbench_") {
            chosen.extend(lcbench(name, data)?);
        } else {
            return Err(unknown(name));
        }
    }
    let mut seen = BTreeSet::new();
    if let Some(twice) = chosen
        .iter()
        .map(|p| p.name())
        .find(|n| !seen.insert(n.clone()))
    {
        return Err(unknown(&twice));
    }
    Ok(chosen)
}

fn unknown(name: &str) -> FidelityFindError {
    FidelityFindError::Unknown(UnknownProblem {
        name: name.to_owned(),
        known: fidelity_suite()
            .iter()
            .map(|p| p.name())
            .chain(REAL_FIDELITY_PROBLEMS.iter().map(|n| (*n).to_owned()))
            .collect(),
    })
}

/// The LCBench problems `name` asks for (`lcbench` or `lcbench_<task>`).
#[cfg(feature = "lcbench")]
fn lcbench(
    name: &str,
    data: Option<&Path>,
) -> Result<Vec<Box<dyn FidelityProblem>>, FidelityFindError> {
    let Some(data) = data else {
        return Err(FidelityFindError::NoData(name.to_owned()));
    };
    if name == "lcbench" {
        return Ok(crate::lcbench::lcbench_problems(data)?);
    }
    match name.trim_start_matches("lcbench_").parse::<u32>() {
        Ok(task) => Ok(vec![crate::lcbench::lcbench_problem(data, task)?]),
        Err(_) => Err(unknown(name)),
    }
}

/// Without the feature, the LCBench problems are named but not available.
#[cfg(not(feature = "lcbench"))]
fn lcbench(
    name: &str,
    _data: Option<&Path>,
) -> Result<Vec<Box<dyn FidelityProblem>>, FidelityFindError> {
    Err(FidelityFindError::NeedsFeature(name.to_owned()))
}

/// Why [`find_fidelity_problems`] could not build the problems asked for.
#[derive(Debug, thiserror::Error)]
pub enum FidelityFindError {
    /// A name no problem has, or one named twice.
    #[error(transparent)]
    Unknown(#[from] UnknownProblem),
    /// The digits network could not be set up.
    #[error("cannot set up the digits network: {0}")]
    DigitsNet(#[from] ferrotune_examples::digits::EvalError),
    /// An LCBench problem in a build without the feature `lcbench`.
    #[error(
        "`{0}` needs the LCBench surrogate, which this build leaves out; rebuild with \
         `--features lcbench` (cargo build --release -p ferrotune-bench --features lcbench)"
    )]
    NeedsFeature(String),
    /// An LCBench problem without a data folder.
    #[error(
        "`{0}` reads the LCBench surrogate from the benchmark data folder; pass --data DIR \
         or set FERROTUNE_BENCH_DATA to the folder holding yahpo/lcbench/"
    )]
    NoData(String),
    /// The LCBench surrogate could not be loaded.
    #[cfg(feature = "lcbench")]
    #[error(transparent)]
    Lcbench(#[from] crate::lcbench::LcbenchError),
}

/// A multi-fidelity problem name that [`find_fidelity_problems`] does not know (or one named
/// twice).
#[derive(Debug, thiserror::Error)]
#[error("unknown (or repeated) multi-fidelity problem `{name}`; the problems are {}", known.join(", "))]
pub struct UnknownProblem {
    /// The name as given.
    pub name: String,
    /// The names that are known.
    pub known: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::SYNTHETIC;
    use ferrotune::{CategoricalDistribution, FloatDistribution, Param, ParamValue};

    fn synthetic(name: &str) -> Option<&'static crate::Synthetic> {
        SYNTHETIC.iter().find(|s| s.name == name)
    }

    fn params(x: &[f64]) -> Params {
        x.iter()
            .enumerate()
            .map(|(i, &v)| {
                let dist = FloatDistribution::uniform(-100.0, 100.0).expect("valid");
                Param::new(&format!("x{i}"), dist.into(), ParamValue::Float(v))
            })
            .collect()
    }

    fn points(dim: usize) -> Vec<Vec<f64>> {
        let mut rng = TrialRng::from_seed(7);
        (0..20)
            .map(|_| (0..dim).map(|_| rng.uniform()).collect())
            .collect()
    }

    #[test]
    fn mfhartmann_at_full_fidelity_is_hartmann() {
        for (dim, name) in [(3, "hartmann3"), (6, "hartmann6")] {
            let plain = synthetic(name).expect("in the suite");
            for correlation in Correlation::ALL {
                let p = MfHartmann { dim, correlation };
                for x in points(dim).into_iter().chain([plain.argmin.to_vec()]) {
                    let at_max = p.evaluate_at(&params(&x), 100, 3);
                    assert_eq!(at_max.to_bits(), (plain.f)(&x).to_bits());
                }
                let best = p.evaluate_at(&params(plain.argmin), 100, 0);
                assert!((best - p.optimum().unwrap_or(0.0)).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn branin_mf_at_full_fidelity_is_branin() {
        let plain = synthetic("branin").expect("in the suite");
        let mut rng = TrialRng::from_seed(1);
        for _ in 0..20 {
            let x = [-5.0 + 15.0 * rng.uniform(), 15.0 * rng.uniform()];
            let v = BraninMf.evaluate_at(&params(&x), 100, 0);
            assert!((v - (plain.f)(&x)).abs() < 1e-12);
        }
    }

    #[test]
    fn costs_are_positive_and_sum_to_the_documented_total() {
        let x = params(&[0.3; 6]);
        for p in fidelity_suite() {
            let costs: Vec<f64> = (1..=p.max_steps()).map(|z| p.cost(&x, z)).collect();
            assert!(costs.iter().all(|&c| c > 0.0), "{}", p.name());
            let total: f64 = costs.iter().sum();
            // MFHartmann and Branin-MF: 0.05 + 0.95 = 1; the curves: (0.5 + x₀) = 0.8.
            let expected = if p.name() == "lc_hartmann6" { 0.8 } else { 1.0 };
            assert!((total - expected).abs() < 1e-9, "{}: {total}", p.name());
        }
    }

    #[test]
    fn evaluations_are_deterministic_and_noise_shrinks_with_fidelity() {
        for p in fidelity_suite() {
            let x = params(&[0.4; 6]);
            for z in [1, 7, p.max_steps()] {
                assert_eq!(
                    p.evaluate_at(&x, z, 11).to_bits(),
                    p.evaluate_at(&x, z, 11).to_bits()
                );
            }
        }
        let p = MfHartmann {
            dim: 3,
            correlation: Correlation::Terrible,
        };
        let x = params(&[0.2, 0.5, 0.7]);
        assert_ne!(
            p.evaluate_at(&x, 1, 1).to_bits(),
            p.evaluate_at(&x, 1, 2).to_bits()
        );
        assert_eq!(
            p.evaluate_at(&x, 100, 1).to_bits(),
            p.evaluate_at(&x, 100, 2).to_bits()
        );
    }

    #[test]
    fn learning_curves_cross() {
        let curves = LearningCurves;
        let xs = points(6);
        let crossing = xs.iter().enumerate().any(|(i, a)| {
            xs[i + 1..].iter().any(|b| {
                let early =
                    curves.evaluate_at(&params(a), 2, 0) - curves.evaluate_at(&params(b), 2, 0);
                let late =
                    curves.evaluate_at(&params(a), 50, 0) - curves.evaluate_at(&params(b), 50, 0);
                early * late < 0.0
            })
        });
        assert!(crossing);
    }

    #[test]
    fn problems_are_found_by_name() {
        let names = ["mfh3_good".to_owned(), "branin_mf".to_owned()];
        let found = find_fidelity_problems(&names, None).expect("known");
        assert_eq!(found.len(), 2);
        let err = find_fidelity_problems(&["nope".to_owned()], None)
            .err()
            .expect("unknown");
        assert!(err.to_string().contains("lcbench_3945"), "{err}");
        let twice = ["branin_mf".to_owned(), "branin_mf".to_owned()];
        assert!(find_fidelity_problems(&twice, None).is_err());
        assert_eq!(find_fidelity_problems(&[], None).expect("all").len(), 12);
        // LCBench needs the data folder (and the feature).
        let err = find_fidelity_problems(&["lcbench_3945".to_owned()], None)
            .err()
            .expect("no data");
        assert!(err.to_string().contains("lcbench"), "{err}");
    }

    fn counting_ones_params(cats: &[i64], x: &[f64]) -> Params {
        let cat = CategoricalDistribution::new(vec![ParamValue::Int(0), ParamValue::Int(1)])
            .expect("valid");
        let mut all = params(x);
        for (i, &c) in cats.iter().enumerate() {
            all.insert(Param::new(
                &format!("c{i}"),
                cat.clone().into(),
                ParamValue::Int(c),
            ));
        }
        all
    }

    #[test]
    fn counting_ones_is_minus_d_at_all_ones_and_unbiased_elsewhere() {
        let p = CountingOnes { dim: 8 };
        let best = counting_ones_params(&[1; 4], &[1.0; 4]);
        for step in [1, 50, COUNTING_ONES_STEPS] {
            assert_eq!(
                p.evaluate_at(&best, step, 3).to_bits(),
                (-8.0_f64).to_bits()
            );
        }
        assert_eq!(p.optimum(), Some(-8.0));
        let x = counting_ones_params(&[1, 0, 1, 0], &[0.2, 0.5, 0.7, 0.9]);
        let expected = -(2.0 + 0.2 + 0.5 + 0.7 + 0.9);
        let spread = |step: u64| {
            let values: Vec<f64> = (0..40).map(|seed| p.evaluate_at(&x, step, seed)).collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
            (mean, var.sqrt())
        };
        let (low_mean, low_sd) = spread(1);
        let (high_mean, high_sd) = spread(COUNTING_ONES_STEPS);
        assert!(
            (low_mean - expected).abs() < 0.1,
            "{low_mean} vs {expected}"
        );
        assert!(
            (high_mean - expected).abs() < 0.01,
            "{high_mean} vs {expected}"
        );
        // 162 times the draws: the spread shrinks by about √162 ≈ 12.7.
        assert!(high_sd * 6.0 < low_sd, "{high_sd} vs {low_sd}");
    }
}
