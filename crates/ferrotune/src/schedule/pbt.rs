//! The exploit and explore operators of Population Based Training, as pure, deterministic
//! functions.
//!
//! Population Based Training (Jaderberg et al., "Population based training of neural
//! networks", arXiv:1711.09846, 2017) trains a population of models in parallel and, every so
//! often, lets the worst members copy the best ones (*exploit*: truncation selection, the
//! loser resumes from the winner's checkpoint) and then changes the copied hyperparameters a
//! little (*explore*: perturb them, or resample them from the prior). In ferrotune a trial's
//! parameters never change, so an exploit starts a *new* trial, linked to its parent and to
//! the checkpoint it resumes from, whose parameters [`explore`] derives from the parent's (see
//! the design notes: "pause and resume is one mechanism"). This module holds only the two
//! operators; the scheduler that calls them stores its state with the study.
//!
//! # Defaults
//! [`PbtConfig::default`] takes Ray Tune's `PopulationBasedTraining` defaults
//! (`ray/tune/schedulers/pbt.py`, ray 2.60): `quantile_fraction = 0.25`,
//! `resample_probability = 0.25`, `perturbation_factors = (1.2, 0.8)`. Syne Tune and NNI use
//! the same fraction and probability; the paper uses 20% quantiles and the factors 0.8/1.2.
//!
//! # Exploit
//! [`exploit`] ranks the population (NaN scores last, ties by member id) and pairs each member
//! of the bottom quantile with a member of the top quantile drawn uniformly at random. The
//! quantile holds [`quantile_size`]`(n, q) = max(1, ⌊n·q⌋)` members, shrunk to `⌊n/2⌋` so the
//! two quantiles never overlap (nothing happens with fewer than two members). Ray rounds up
//! instead (`⌈n·q⌉`, capped at `⌊n/2⌋`), which exploits one member more for, e.g., `n = 10`;
//! rounding down keeps "the bottom 25%" at most a quarter of the population.
//!
//! # Explore
//! [`explore`] treats each parameter independently, on its internal value (see
//! [`crate::space`]): with probability `resample_probability` it is drawn afresh from its
//! distribution ([`Distribution::from_unit`] of a uniform draw, so with the distribution's own
//! law); otherwise it is *perturbed*:
//!
//! - **Floats and ints** are multiplied by one of the two perturbation factors, each with
//!   probability ½ — Ray's rule. On a log scale that is the natural move (adding `ln 1.2` to
//!   the logarithm); on a linear scale it is a move relative to the value's magnitude. The
//!   result is then **rounded** to the step grid (to the nearest integer for ints) and
//!   **clipped** to `[low, high]`. Ray does not clip, so its perturbations can leave the search
//!   space (ray issue #11936); here every explored value lies inside its distribution.
//! - **Rounding never swallows a move.** When the product rounds back to the value's own grid
//!   point (2 × 1.2 = 2.4 and 2 × 0.8 = 1.6 both round to 2, so by rounding alone the ints 1
//!   and 2 could never move), the value moves one grid step in the factor's direction
//!   instead, unless it is already at that bound.
//! - **Zero on a linear scale** cannot move by multiplication, and zero is a common value
//!   (a dropout or weight decay of 0). Multiplying by `f` moves `x` the fraction `|f − 1|` of
//!   its distance to zero, the origin of a multiplicative scale; at zero that distance is 0,
//!   so the distance to the bound in the chosen direction stands in for it: a factor above 1
//!   moves `0` up by `(f − 1)·high`, a factor below 1 down by `(1 − f)·(−low)` (then rounded
//!   and clipped like any other move). It stays a local move of the same relative size, never
//!   leaves the range and is a no-op only at a bound; resampling instead would turn a
//!   perturbation into a restart.
//! - **Categoricals** move to a neighbouring choice, index ±1 with probability ½ each, clipped
//!   at the ends (the first choice stays put half the time). The choices are therefore treated
//!   as **ordered by their listing order**: list `[1e-4, 1e-3, 1e-2]` in order, not shuffled.
//!   Ray does the same for list domains. A categorical with two choices (a boolean) always
//!   flips instead of staying put half the time.
//!
//! Every parameter consumes exactly two uniform draws from the [`TrialRng`] (the resample coin,
//! then the new value or the direction), in name order, so the same stream state gives the
//! same parameters, and the draws of one parameter do not depend on another's outcome.

use crate::error::{Error, Result};
use crate::rng::TrialRng;
use crate::space::Distribution;
use crate::study::Direction;
use crate::trial::Params;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// The settings of PBT's exploit and explore steps, validated at construction and when
/// deserialized.
///
/// Serialized as `{"quantile_fraction": 0.25, "resample_probability": 0.25,
/// "perturbation_factors": [1.2, 0.8]}`; missing fields take the defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PbtConfigFields", into = "PbtConfigFields")]
pub struct PbtConfig {
    quantile_fraction: f64,
    resample_probability: f64,
    perturbation_factors: (f64, f64),
}

/// [`PbtConfig`] as stored, before validation.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PbtConfigFields {
    #[serde(default = "default_quantile_fraction")]
    quantile_fraction: f64,
    #[serde(default = "default_resample_probability")]
    resample_probability: f64,
    #[serde(default = "default_perturbation_factors")]
    perturbation_factors: (f64, f64),
}

fn default_quantile_fraction() -> f64 {
    PbtConfig::DEFAULT_QUANTILE_FRACTION
}
fn default_resample_probability() -> f64 {
    PbtConfig::DEFAULT_RESAMPLE_PROBABILITY
}
fn default_perturbation_factors() -> (f64, f64) {
    PbtConfig::DEFAULT_PERTURBATION_FACTORS
}

impl TryFrom<PbtConfigFields> for PbtConfig {
    type Error = Error;
    fn try_from(f: PbtConfigFields) -> Result<Self> {
        PbtConfig::new(
            f.quantile_fraction,
            f.resample_probability,
            f.perturbation_factors,
        )
    }
}

impl From<PbtConfig> for PbtConfigFields {
    fn from(c: PbtConfig) -> Self {
        PbtConfigFields {
            quantile_fraction: c.quantile_fraction,
            resample_probability: c.resample_probability,
            perturbation_factors: c.perturbation_factors,
        }
    }
}

impl Default for PbtConfig {
    /// Ray Tune's defaults: quantiles of 25%, resampling with probability 0.25, factors 1.2
    /// and 0.8.
    fn default() -> Self {
        PbtConfig {
            quantile_fraction: Self::DEFAULT_QUANTILE_FRACTION,
            resample_probability: Self::DEFAULT_RESAMPLE_PROBABILITY,
            perturbation_factors: Self::DEFAULT_PERTURBATION_FACTORS,
        }
    }
}

impl PbtConfig {
    /// Ray Tune's default share of the population in each of the bottom and top quantiles.
    pub const DEFAULT_QUANTILE_FRACTION: f64 = 0.25;
    /// Ray Tune's default probability that explore resamples a parameter.
    pub const DEFAULT_RESAMPLE_PROBABILITY: f64 = 0.25;
    /// Ray Tune's default perturbation factors.
    pub const DEFAULT_PERTURBATION_FACTORS: (f64, f64) = (1.2, 0.8);

    /// A configuration: `quantile_fraction ∈ (0, 0.5]` is the share of the population in each
    /// of the bottom quantile (which exploits) and the top quantile (which is copied);
    /// `resample_probability ∈ [0, 1]` is the chance that explore draws a parameter afresh
    /// instead of perturbing it; `perturbation_factors` are the two multipliers a perturbation
    /// chooses between, both finite and positive.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the argument, its value and the fix.
    pub fn new(
        quantile_fraction: f64,
        resample_probability: f64,
        perturbation_factors: (f64, f64),
    ) -> Result<Self> {
        if !(quantile_fraction > 0.0 && quantile_fraction <= 0.5) {
            return Err(Error::invalid_argument(
                "quantile_fraction",
                format!(
                    "must be in (0, 0.5] (the bottom and top quantiles must not overlap), got \
                     {quantile_fraction}; use 0.25, Ray Tune's default"
                ),
            ));
        }
        if !(0.0..=1.0).contains(&resample_probability) {
            return Err(Error::invalid_argument(
                "resample_probability",
                format!(
                    "must be a probability in [0, 1], got {resample_probability}; use 0.25, \
                     Ray Tune's default"
                ),
            ));
        }
        let (up, down) = perturbation_factors;
        for factor in [up, down] {
            if !(factor.is_finite() && factor > 0.0) {
                return Err(Error::invalid_argument(
                    "perturbation_factors",
                    format!(
                        "both factors must be finite and > 0 (a value is multiplied by one of \
                         them), got ({up}, {down}); use (1.2, 0.8), Ray Tune's default"
                    ),
                ));
            }
        }
        Ok(PbtConfig {
            quantile_fraction,
            resample_probability,
            perturbation_factors,
        })
    }

    /// The share of the population in each of the bottom and top quantiles.
    pub fn quantile_fraction(&self) -> f64 {
        self.quantile_fraction
    }

    /// The probability that explore resamples a parameter instead of perturbing it.
    pub fn resample_probability(&self) -> f64 {
        self.resample_probability
    }

    /// The two factors a perturbation multiplies a numeric value by, each with probability ½.
    pub fn perturbation_factors(&self) -> (f64, f64) {
        self.perturbation_factors
    }
}

/// How many members each of the bottom and top quantiles holds in a population of `n`:
/// `max(1, ⌊n·quantile_fraction⌋)`, shrunk to `⌊n/2⌋` so that the two never overlap; 0 when
/// `n < 2`.
///
/// `n·quantile_fraction` within a relative `1e-9` of a whole number counts as that number
/// (`100 × 0.29` is 28.999999999999996 in floating point, and is 29 here).
pub fn quantile_size(n: usize, quantile_fraction: f64) -> usize {
    if n < 2 {
        return 0;
    }
    let exact = n as f64 * quantile_fraction;
    let nearest = exact.round();
    let whole = if (exact - nearest).abs() <= 1e-9 * nearest.max(1.0) {
        nearest
    } else {
        exact.floor()
    };
    // `whole` is in [0, n] for a fraction in [0, 1]; the cast saturates otherwise.
    let k = (whole.max(0.0) as usize).max(1);
    k.min(n / 2)
}

/// PBT's exploit step (truncation selection): which members copy which.
///
/// `population` holds `(member id, score)` pairs, each member once; `direction` says whether a
/// lower or a higher score is better. The members are ranked best first — a NaN score ranks
/// after every number in either direction (a diverged member is never copied), and equal
/// scores are ordered by id, smaller first, so the ranking is the same on every worker. Each
/// of the [`quantile_size`] worst members (the bottom quantile) is paired with a member of the
/// top quantile drawn uniformly (and independently) with `rng`.
///
/// Returns `(loser, winner)` pairs, worst loser first; empty when the population has fewer
/// than two members. The same population, configuration and `rng` state give the same pairs.
pub fn exploit(
    population: &[(u64, f64)],
    config: &PbtConfig,
    direction: Direction,
    rng: &mut TrialRng,
) -> Vec<(u64, u64)> {
    let k = quantile_size(population.len(), config.quantile_fraction);
    if k == 0 {
        return Vec::new();
    }
    let mut ranked = population.to_vec();
    ranked.sort_by(|(a_id, a), (b_id, b)| {
        a.is_nan()
            .cmp(&b.is_nan())
            .then(
                direction
                    .to_loss(*a)
                    .partial_cmp(&direction.to_loss(*b))
                    .unwrap_or(Ordering::Equal),
            )
            .then(a_id.cmp(b_id))
    });
    let top = &ranked[..k];
    ranked[ranked.len() - k..]
        .iter()
        .rev()
        .map(|&(loser, _)| {
            // k ≥ 1 and fits in u64; the draw is below k, so the index is in range.
            let pick = rng.below(k as u64) as usize;
            (loser, top[pick.min(k - 1)].0)
        })
        .collect()
}

/// PBT's explore step: the parameters of the new trial that continues from a parent with
/// `params`.
///
/// Each parameter keeps its name and distribution and gets a new value from
/// [`explore_value`]; parameters are visited in name order, each taking exactly two draws from
/// `rng`, so the same `params`, configuration and `rng` state give the same result. Every
/// returned value lies inside its distribution and on its grid.
///
/// # Errors
/// [`Error::ValueOutOfDistribution`] when a parent's value does not belong to its own
/// distribution (a corrupt or hand-made trial); stored trials are validated, so this does not
/// happen for them.
pub fn explore(params: &Params, config: &PbtConfig, rng: &mut TrialRng) -> Result<Params> {
    let mut explored = Params::with_capacity(params.len());
    for param in params.as_slice() {
        let internal = param.internal()?;
        let next = explore_value(param.distribution(), internal, config, rng);
        explored.insert(param.with_internal(next)?);
    }
    Ok(explored)
}

/// Explores one parameter: its new internal value from its current internal value
/// `internal`, by the rules of the [module documentation](self) — resample with probability
/// `resample_probability`, else perturb (multiply, round to the grid, clip; move a neighbouring
/// categorical choice).
///
/// Always takes exactly two uniform draws from `rng`. The result always lies inside
/// `distribution`; an `internal` outside it (NaN included) is resampled.
pub fn explore_value(
    distribution: &Distribution,
    internal: f64,
    config: &PbtConfig,
    rng: &mut TrialRng,
) -> f64 {
    let coin = rng.uniform();
    let second = rng.uniform();
    if coin < config.resample_probability || !distribution.contains(internal) {
        return distribution.from_unit(second);
    }
    let up = second < 0.5;
    match distribution {
        Distribution::Categorical(c) => {
            let n = c.choices().len() as f64;
            if n <= 1.0 {
                internal
            } else if n <= 2.0 {
                1.0 - internal
            } else if up {
                (internal + 1.0).min(n - 1.0)
            } else {
                (internal - 1.0).max(0.0)
            }
        }
        _ => {
            let (up_factor, down_factor) = config.perturbation_factors;
            perturb(
                distribution,
                internal,
                if up { up_factor } else { down_factor },
            )
        }
    }
}

/// A numeric distribution's grid: `(low, step, index of the last point)`; `None` for a
/// continuous float range.
fn grid(distribution: &Distribution) -> Option<(f64, f64, f64)> {
    match distribution {
        Distribution::Float(d) => d.step().map(|step| {
            let last = ((d.high() - d.low()) / step).round().max(0.0);
            (d.low(), step, last)
        }),
        Distribution::Int(d) => Some((
            d.low() as f64,
            d.step() as f64,
            (d.cardinality() - 1) as f64,
        )),
        Distribution::Categorical(c) => Some((0.0, 1.0, (c.choices().len() - 1) as f64)),
    }
}

/// A float or int value `x` (inside `distribution`) multiplied by `factor`, then rounded to the
/// grid (moving at least one grid step when the product moved) and clipped to the bounds.
fn perturb(distribution: &Distribution, x: f64, factor: f64) -> f64 {
    let (low, high) = match distribution {
        Distribution::Float(d) => (d.low(), d.high()),
        Distribution::Int(d) => (d.low() as f64, d.high() as f64),
        Distribution::Categorical(_) => return x,
    };
    let target = if x == 0.0 {
        // Only linear scales hold 0 (log scales need low > 0): move |factor − 1| of the way to
        // the bound in the factor's direction (see the module documentation).
        if factor > 1.0 {
            (factor - 1.0) * high
        } else {
            (factor - 1.0) * -low
        }
    } else {
        x * factor
    };
    match grid(distribution) {
        None => target.clamp(low, high),
        Some((grid_low, step, last)) => {
            let current = ((x - grid_low) / step).round().clamp(0.0, last);
            let mut k = ((target - grid_low) / step).round().clamp(0.0, last);
            let moved = target - x;
            if k.total_cmp(&current).is_eq() && moved != 0.0 {
                k = (current + moved.signum()).clamp(0.0, last);
            }
            // As `Distribution::from_unit` builds grid points, so the value is on the grid.
            (grid_low + k * step).min(high)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{CategoricalDistribution, FloatDistribution, IntDistribution, ParamValue};
    use crate::trial::Param;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn rng(seed: u64) -> TrialRng {
        TrialRng::from_seed(seed)
    }

    /// Never resample: every draw is a perturbation.
    fn perturb_only() -> Result<PbtConfig> {
        PbtConfig::new(0.25, 0.0, (1.2, 0.8))
    }

    /// The distinct results of exploring `x` many times.
    fn outcomes(d: &Distribution, x: f64, config: &PbtConfig) -> Vec<f64> {
        let mut r = rng(11);
        let mut seen: Vec<f64> = Vec::new();
        for _ in 0..200 {
            let y = explore_value(d, x, config, &mut r);
            if !seen.iter().any(|s| s.to_bits() == y.to_bits()) {
                seen.push(y);
            }
        }
        seen.sort_by(f64::total_cmp);
        seen
    }

    fn float(low: f64, high: f64) -> Result<Distribution> {
        Ok(FloatDistribution::uniform(low, high)?.into())
    }

    #[test]
    fn defaults_are_ray_tunes_and_serde_round_trips() -> Result<()> {
        let c = PbtConfig::default();
        assert_eq!(c.quantile_fraction().to_bits(), 0.25f64.to_bits());
        assert_eq!(c.resample_probability().to_bits(), 0.25f64.to_bits());
        assert_eq!(c.perturbation_factors(), (1.2, 0.8));
        let json = serde_json::to_string(&c)?;
        assert_eq!(
            json,
            r#"{"quantile_fraction":0.25,"resample_probability":0.25,"perturbation_factors":[1.2,0.8]}"#
        );
        assert_eq!(serde_json::from_str::<PbtConfig>(&json)?, c);
        assert_eq!(serde_json::from_str::<PbtConfig>("{}")?, c);
        let custom: PbtConfig = serde_json::from_str(r#"{"quantile_fraction": 0.2}"#)?;
        assert_eq!(custom.quantile_fraction().to_bits(), 0.2f64.to_bits());
        Ok(())
    }

    #[test]
    fn invalid_configs_name_the_argument_and_the_fix() {
        let cases: [(f64, f64, (f64, f64), &str); 8] = [
            (0.0, 0.25, (1.2, 0.8), "quantile_fraction"),
            (0.6, 0.25, (1.2, 0.8), "quantile_fraction"),
            (f64::NAN, 0.25, (1.2, 0.8), "quantile_fraction"),
            (0.25, -0.1, (1.2, 0.8), "resample_probability"),
            (0.25, 1.5, (1.2, 0.8), "resample_probability"),
            (0.25, f64::NAN, (1.2, 0.8), "resample_probability"),
            (0.25, 0.25, (0.0, 0.8), "perturbation_factors"),
            (0.25, 0.25, (1.2, f64::INFINITY), "perturbation_factors"),
        ];
        for (q, p, f, name) in cases {
            match PbtConfig::new(q, p, f) {
                Err(Error::InvalidArgument { name: got, reason }) => {
                    assert_eq!(got, name);
                    assert!(reason.contains("Ray Tune's default"), "{reason}");
                }
                other => panic!("({q}, {p}, {f:?}) gave {other:?}"),
            }
        }
        // Deserializing validates too, and rejects unknown fields.
        assert!(serde_json::from_str::<PbtConfig>(r#"{"quantile_fraction": 0.7}"#).is_err());
        assert!(serde_json::from_str::<PbtConfig>(r#"{"quantile": 0.2}"#).is_err());
    }

    #[test]
    fn quantile_sizes_for_one_to_ten_members() {
        let sizes = |q: f64| (1..=10).map(|n| quantile_size(n, q)).collect::<Vec<_>>();
        assert_eq!(sizes(0.25), [0, 1, 1, 1, 1, 1, 1, 2, 2, 2]);
        assert_eq!(sizes(0.5), [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]);
        assert_eq!(sizes(0.1), [0, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(sizes(0.4), [0, 1, 1, 1, 2, 2, 2, 3, 3, 4]);
        assert_eq!(quantile_size(0, 0.25), 0);
        // Floating-point noise below a whole number does not lose a member.
        assert_eq!(quantile_size(100, 0.29), 29);
        for n in 0..200 {
            for q in [0.01, 0.2, 0.25, 0.33, 0.5] {
                let k = quantile_size(n, q);
                assert!(2 * k <= n && (n < 2 || k >= 1), "n={n} q={q} k={k}");
            }
        }
    }

    #[test]
    fn fewer_than_two_members_exploit_nothing() -> Result<()> {
        let c = PbtConfig::default();
        assert!(exploit(&[], &c, Direction::Minimize, &mut rng(1)).is_empty());
        assert!(exploit(&[(3, 1.0)], &c, Direction::Minimize, &mut rng(1)).is_empty());
        assert_eq!(
            exploit(&[(3, 1.0), (4, 2.0)], &c, Direction::Minimize, &mut rng(1)),
            [(4, 3)]
        );
        assert_eq!(
            exploit(&[(3, 1.0), (4, 2.0)], &c, Direction::Maximize, &mut rng(1)),
            [(3, 4)]
        );
        Ok(())
    }

    #[test]
    fn bottom_quantile_copies_the_top_quantile() -> Result<()> {
        // Scores 0..8 on ids 100..108: k = 2.
        let population: Vec<(u64, f64)> = (0..8).map(|i| (100 + i, i as f64)).collect();
        let c = PbtConfig::default();
        let pairs = exploit(&population, &c, Direction::Minimize, &mut rng(5));
        assert_eq!(pairs.iter().map(|p| p.0).collect::<Vec<_>>(), [107, 106]);
        assert!(pairs.iter().all(|p| p.1 == 100 || p.1 == 101));
        let pairs = exploit(&population, &c, Direction::Maximize, &mut rng(5));
        assert_eq!(pairs.iter().map(|p| p.0).collect::<Vec<_>>(), [100, 101]);
        assert!(pairs.iter().all(|p| p.1 == 107 || p.1 == 106));
        // Every top member gets drawn, about equally often.
        let mut r = rng(9);
        let mut counts = [0u32; 2];
        for _ in 0..2000 {
            for (_, winner) in exploit(&population, &c, Direction::Minimize, &mut r) {
                counts[(winner - 100) as usize] += 1;
            }
        }
        assert!(
            counts.iter().all(|&n| (1800..2200).contains(&n)),
            "{counts:?}"
        );
        Ok(())
    }

    #[test]
    fn nan_is_worst_in_both_directions_and_ties_go_by_id() {
        let c = PbtConfig::new(0.5, 0.25, (1.2, 0.8)).expect("valid");
        let population = [(1, f64::NAN), (2, 5.0), (3, -1.0), (4, f64::NAN)];
        for direction in [Direction::Minimize, Direction::Maximize] {
            let pairs = exploit(&population, &c, direction, &mut rng(2));
            let losers: Vec<u64> = pairs.iter().map(|p| p.0).collect();
            assert_eq!(losers, [4, 1], "{direction:?}");
            assert!(pairs.iter().all(|p| p.1 == 2 || p.1 == 3));
        }
        // Equal scores: the smaller id ranks better.
        let tied = [(9, 1.0), (7, 1.0), (8, 1.0), (6, 1.0)];
        let pairs = exploit(&tied, &c, Direction::Minimize, &mut rng(2));
        assert_eq!(pairs.iter().map(|p| p.0).collect::<Vec<_>>(), [9, 8]);
        assert!(pairs.iter().all(|p| p.1 == 6 || p.1 == 7));
    }

    #[test]
    fn exploit_is_deterministic_in_the_rng() {
        let population: Vec<(u64, f64)> = (0..40).map(|i| (i, ((i * 7) % 13) as f64)).collect();
        let c = PbtConfig::default();
        let a = exploit(&population, &c, Direction::Minimize, &mut rng(3));
        let b = exploit(&population, &c, Direction::Minimize, &mut rng(3));
        assert_eq!(a, b);
        assert_eq!(a.len(), 10);
    }

    #[test]
    fn log_scale_perturbation_is_multiplicative() -> Result<()> {
        let c = perturb_only()?;
        let d: Distribution = FloatDistribution::log_uniform(1e-5, 1.0)?.into();
        assert_eq!(outcomes(&d, 1e-2, &c), [1e-2 * 0.8, 1e-2 * 1.2]);
        let d: Distribution = IntDistribution::log_range(1, 1024)?.into();
        // 100 × 0.8 = 80, 100 × 1.2 = 120.
        assert_eq!(outcomes(&d, 100.0, &c), [80.0, 120.0]);
        Ok(())
    }

    #[test]
    fn linear_perturbation_multiplies_and_rounds_to_the_grid() -> Result<()> {
        let c = perturb_only()?;
        assert_eq!(outcomes(&float(-10.0, 10.0)?, -5.0, &c), [-6.0, -4.0]);
        let d: Distribution = FloatDistribution::stepped(0.0, 10.0, 0.5)?.into();
        // 3.5 × 0.8 = 2.8 → 3.0, 3.5 × 1.2 = 4.2 → 4.0.
        assert_eq!(outcomes(&d, 3.5, &c), [3.0, 4.0]);
        let d: Distribution = IntDistribution::new(0, 100, false, 5)?.into();
        // 50 × 0.8 = 40, 50 × 1.2 = 60.
        assert_eq!(outcomes(&d, 50.0, &c), [40.0, 60.0]);
        Ok(())
    }

    #[test]
    fn rounding_never_swallows_a_move() -> Result<()> {
        let c = perturb_only()?;
        let d: Distribution = IntDistribution::range(1, 4)?.into();
        // 2 × 1.2 = 2.4 and 2 × 0.8 = 1.6 both round to 2; the value moves one step instead.
        assert_eq!(outcomes(&d, 2.0, &c), [1.0, 3.0]);
        // 1 can only go up.
        assert_eq!(outcomes(&d, 1.0, &c), [1.0, 2.0]);
        let d: Distribution = FloatDistribution::stepped(0.0, 10.0, 1.0)?.into();
        assert_eq!(outcomes(&d, 1.0, &c), [0.0, 2.0]);
        Ok(())
    }

    #[test]
    fn perturbations_are_clipped_at_the_bounds() -> Result<()> {
        let c = perturb_only()?;
        assert_eq!(outcomes(&float(0.5, 1.0)?, 0.95, &c), [0.76, 1.0]);
        assert_eq!(outcomes(&float(0.5, 1.0)?, 0.55, &c), [0.5, 0.55 * 1.2]);
        let d: Distribution = FloatDistribution::log_uniform(1e-3, 1.0)?.into();
        assert_eq!(outcomes(&d, 1e-3, &c), [1e-3, 1.2e-3]);
        let d: Distribution = IntDistribution::range(1, 10)?.into();
        assert_eq!(outcomes(&d, 10.0, &c), [8.0, 10.0]);
        // A stepped range's top point is never exceeded, even after rounding.
        let d: Distribution = FloatDistribution::stepped(0.0, 0.9, 0.3)?.into();
        // (The top point as the grid computes it: 0 + 3 × 0.3 = 0.8999999999999999.)
        assert_eq!(outcomes(&d, 0.9, &c), [0.6, 3.0 * 0.3]);
        Ok(())
    }

    #[test]
    fn zero_moves_toward_the_bound_in_the_factors_direction() -> Result<()> {
        let c = perturb_only()?;
        // (1.2 − 1)·1 and (0.8 − 1)·1, as computed in floating point.
        assert_eq!(
            outcomes(&float(-1.0, 1.0)?, 0.0, &c),
            [(0.8 - 1.0) * 1.0, (1.2 - 1.0) * 1.0]
        );
        // At the lower bound, down is a no-op.
        assert_eq!(
            outcomes(&float(0.0, 10.0)?, 0.0, &c),
            [0.0, (1.2 - 1.0) * 10.0]
        );
        let d: Distribution = IntDistribution::range(-10, 10)?.into();
        assert_eq!(outcomes(&d, 0.0, &c), [-2.0, 2.0]);
        // 0.2 × 3 = 0.6 rounds to 1.
        let d: Distribution = IntDistribution::range(0, 3)?.into();
        assert_eq!(outcomes(&d, 0.0, &c), [0.0, 1.0]);
        Ok(())
    }

    #[test]
    fn categoricals_move_to_a_neighbour_and_two_choices_flip() -> Result<()> {
        let c = perturb_only()?;
        let d: Distribution = CategoricalDistribution::new(["a", "b", "c", "d", "e"])?.into();
        assert_eq!(outcomes(&d, 2.0, &c), [1.0, 3.0]);
        assert_eq!(outcomes(&d, 0.0, &c), [0.0, 1.0]);
        assert_eq!(outcomes(&d, 4.0, &c), [3.0, 4.0]);
        let d: Distribution = CategoricalDistribution::new([true, false])?.into();
        assert_eq!(outcomes(&d, 0.0, &c), [1.0]);
        assert_eq!(outcomes(&d, 1.0, &c), [0.0]);
        let d: Distribution = CategoricalDistribution::new(["only"])?.into();
        assert_eq!(outcomes(&d, 0.0, &c), [0.0]);
        Ok(())
    }

    #[test]
    fn resampling_happens_with_the_configured_probability() -> Result<()> {
        // From 1.0 on a wide log range a perturbation gives exactly 0.8 or 1.2; a resample
        // almost surely gives something else.
        let d: Distribution = FloatDistribution::log_uniform(1e-3, 1e3)?.into();
        let c = PbtConfig::default();
        let mut r = rng(42);
        let n = 20_000;
        let resampled = (0..n)
            .filter(|_| {
                let y = explore_value(&d, 1.0, &c, &mut r);
                y.to_bits() != 0.8f64.to_bits() && y.to_bits() != 1.2f64.to_bits()
            })
            .count();
        let share = resampled as f64 / n as f64;
        // Standard deviation sqrt(0.25·0.75/20000) ≈ 0.003: five of them.
        assert!((share - 0.25).abs() < 0.015, "resampled {share}");
        // Probability 1 always resamples, 0 never.
        let always = PbtConfig::new(0.25, 1.0, (1.2, 0.8))?;
        assert!((0..1000).all(|_| {
            let y = explore_value(&d, 1.0, &always, &mut r);
            y.to_bits() != 0.8f64.to_bits() && y.to_bits() != 1.2f64.to_bits()
        }));
        Ok(())
    }

    #[test]
    fn out_of_distribution_values_are_resampled_into_it() -> Result<()> {
        let c = perturb_only()?;
        let d = float(0.0, 1.0)?;
        let mut r = rng(4);
        for x in [f64::NAN, 7.0, -3.0] {
            assert!(d.contains(explore_value(&d, x, &c, &mut r)));
        }
        Ok(())
    }

    fn sample_params() -> Result<Params> {
        let mut p = Params::new();
        p.insert(Param::new(
            "lr",
            FloatDistribution::log_uniform(1e-5, 1.0)?.into(),
            ParamValue::Float(1e-3),
        ));
        p.insert(Param::new(
            "layers",
            IntDistribution::range(1, 8)?.into(),
            ParamValue::Int(4),
        ));
        p.insert(Param::new(
            "optimizer",
            CategoricalDistribution::new(["sgd", "adam", "adamw"])?.into(),
            ParamValue::from("adam"),
        ));
        p.insert(Param::new(
            "nesterov",
            CategoricalDistribution::new([false, true])?.into(),
            ParamValue::Bool(true),
        ));
        Ok(p)
    }

    #[test]
    fn explore_keeps_names_and_distributions_and_is_deterministic() -> Result<()> {
        let parent = sample_params()?;
        let c = PbtConfig::default();
        let a = explore(&parent, &c, &mut rng(8))?;
        let b = explore(&parent, &c, &mut rng(8))?;
        assert_eq!(a, b);
        assert_eq!(
            a.distributions().collect::<Vec<_>>(),
            parent.distributions().collect::<Vec<_>>()
        );
        for param in a.as_slice() {
            param.internal()?;
        }
        // Over many seeds, the children differ from the parent and from one another.
        let children: BTreeSet<String> = (0..50)
            .map(|s| explore(&parent, &c, &mut rng(s)).map(|p| format!("{p:?}")))
            .collect::<Result<_>>()?;
        assert!(children.len() > 20, "{}", children.len());
        Ok(())
    }

    #[test]
    fn explore_reports_a_parent_value_outside_its_distribution() -> Result<()> {
        let mut parent = sample_params()?;
        parent.insert(Param::new(
            "layers",
            IntDistribution::range(1, 8)?.into(),
            ParamValue::Int(99),
        ));
        assert!(matches!(
            explore(&parent, &PbtConfig::default(), &mut rng(1)),
            Err(Error::ValueOutOfDistribution { .. })
        ));
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Properties.
    // -----------------------------------------------------------------------------------------

    /// Random distributions of every kind (a small version of the space tests' generator,
    /// which is private to that module).
    fn any_distribution() -> impl Strategy<Value = Distribution> {
        prop_oneof![
            (-1e6..1e6_f64, prop_oneof![Just(0.0), 0.0..1e6_f64]).prop_map(|(low, width)| {
                Distribution::from(FloatDistribution::uniform(low, low + width).expect("valid"))
            }),
            (-8.0..4.0_f64, 0.0..4.0_f64).prop_map(|(a, span)| {
                let low = 10f64.powf(a);
                let high = 10f64.powf(a + span).max(low);
                Distribution::from(FloatDistribution::log_uniform(low, high).expect("valid"))
            }),
            (
                -100.0..100.0_f64,
                1e-3..10.0_f64,
                0u32..1000,
                prop_oneof![Just(0.0), 0.0..1.0_f64]
            )
                .prop_map(|(low, step, n, extra)| {
                    let high = low + (f64::from(n) + extra) * step;
                    Distribution::from(FloatDistribution::stepped(low, high, step).expect("valid"))
                }),
            (-1_000_000..1_000_000_i64, 0..1_000_000_i64, 1..100_i64).prop_map(
                |(low, span, step)| {
                    Distribution::from(
                        IntDistribution::new(low, low + span, false, step).expect("valid"),
                    )
                }
            ),
            (1..1000_i64, 0..1_000_000_i64).prop_map(|(low, span)| {
                Distribution::from(IntDistribution::log_range(low, low + span).expect("valid"))
            }),
            (1usize..8).prop_map(|n| {
                let choices = (0..n).map(|i| ParamValue::Str(format!("c{i}")));
                Distribution::from(CategoricalDistribution::new(choices).expect("valid"))
            }),
        ]
    }

    fn any_config() -> impl Strategy<Value = PbtConfig> {
        (0.01..=0.5_f64, 0.0..=1.0_f64, 0.1..5.0_f64, 0.1..5.0_f64)
            .prop_map(|(q, p, a, b)| PbtConfig::new(q, p, (a, b)).expect("valid"))
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn explore_stays_inside_the_distribution_and_on_its_grid(
            d in any_distribution(),
            u in 0.0..=1.0_f64,
            config in any_config(),
            seed in any::<u64>(),
        ) {
            let mut r = rng(seed);
            let mut x = d.from_unit(u);
            prop_assert!(d.contains(x));
            // A chain of explorations, as a lineage of exploited trials would make.
            for _ in 0..20 {
                let before = r.clone();
                let next = explore_value(&d, x, &config, &mut r);
                prop_assert!(d.contains(next), "{next} outside {d}");
                prop_assert!(d.to_external(next).is_ok());
                // Same stream state, same value; exactly two draws taken.
                let mut again = before.clone();
                prop_assert_eq!(explore_value(&d, x, &config, &mut again).to_bits(), next.to_bits());
                let mut two = before;
                two.uniform();
                two.uniform();
                prop_assert_eq!(two.next_u64(), r.clone().next_u64());
                x = next;
            }
        }

        #[test]
        fn exploit_pairs_the_bottom_k_with_the_top_k(
            scores in proptest::collection::vec(
                prop_oneof![1 => Just(f64::NAN), 1 => Just(0.0), 8 => -10.0..10.0_f64],
                0..40,
            ),
            q in 0.01..=0.5_f64,
            maximize in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let direction = if maximize { Direction::Maximize } else { Direction::Minimize };
            // Ids in a scrambled order, so the ranking cannot lean on the input order.
            let population: Vec<(u64, f64)> = scores
                .iter()
                .enumerate()
                .map(|(i, &s)| ((i as u64 * 7919) % 10_007, s))
                .collect();
            let config = PbtConfig::new(q, 0.25, (1.2, 0.8)).expect("valid");
            let pairs = exploit(&population, &config, direction, &mut rng(seed));
            let k = quantile_size(population.len(), q);
            prop_assert_eq!(pairs.len(), k);
            // Reference ranking: loss, NaN last, then id.
            let mut ranked = population.clone();
            ranked.sort_by(|a, b| {
                a.1.is_nan()
                    .cmp(&b.1.is_nan())
                    .then(
                        direction
                            .to_loss(a.1)
                            .partial_cmp(&direction.to_loss(b.1))
                            .unwrap_or(std::cmp::Ordering::Equal),
                    )
                    .then(a.0.cmp(&b.0))
            });
            let top: BTreeSet<u64> = ranked.iter().take(k).map(|m| m.0).collect();
            let bottom: Vec<u64> = ranked.iter().rev().take(k).map(|m| m.0).collect();
            prop_assert_eq!(pairs.iter().map(|p| p.0).collect::<Vec<_>>(), bottom);
            prop_assert!(pairs.iter().all(|p| top.contains(&p.1)));
            prop_assert_eq!(pairs, exploit(&population, &config, direction, &mut rng(seed)));
        }
    }
}
