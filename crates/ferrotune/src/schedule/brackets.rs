//! The plans of synchronous successive halving and Hyperband: brackets, rungs, budgets and
//! which trials of a rung go on.
//!
//! # The formulas
//! Successive halving (Jamieson & Talwalkar, "Non-stochastic best arm identification and
//! hyperparameter optimization", AISTATS 2016) runs `n` configurations at a small resource,
//! keeps the best `1/η` of them, runs those `η` times longer, and so on up to the maximum
//! resource `R`. Hyperband (Li, Jamieson, DeSalvo, Rostamizadeh & Talwalkar, "Hyperband: a
//! novel bandit-based approach to hyperparameter optimization", JMLR 18(185), 2017, Algorithm
//! 1) hedges over how aggressive that is with `s_max + 1` brackets:
//!
//! - `s_max = ⌊log_η(R / r_min)⌋`, computed in integers (the largest `k` with
//!   `r_min·ηᵏ ≤ R`): floating-point logarithms undercount exact powers (`ln 243 / ln 3` is
//!   4.999…, which would drop the sixth bracket of `R = 243`, η = 3).
//! - Bracket `s ∈ {s_max, …, 0}` starts `n = ⌈(s_max+1)/(s+1) · ηˢ⌉` configurations (computed
//!   as an exact integer ceiling) at resource `r = R·η⁻ˢ`.
//! - Its rung `i ∈ {0, …, s}` runs `nᵢ = ⌊n·η⁻ⁱ⌋` configurations — the best `⌊nᵢ₋₁/η⌋` of the
//!   previous rung, since `⌊⌊n/ηⁱ⁻¹⌋/η⌋ = ⌊n/ηⁱ⌋` — to resource `rᵢ = r·ηⁱ`, so the last rung
//!   (`i = s`) runs `⌊n/ηˢ⌋ ≥ 1` configurations to `R`.
//!
//! For `R = 81`, η = 3 (the paper's Table 1) the brackets `s = 4, …, 0` start 81, 34, 15, 8
//! and 5 configurations at resources 1, 3, 9, 27 and 81, with rungs of (81, 27, 9, 3, 1),
//! (34, 11, 3, 1), (15, 5, 1), (8, 2) and (5) configurations.
//!
//! # Integer resources
//! Resources are `u64` — the steps (epochs, iterations) at which a trial reports, is paused
//! with a checkpoint and is resumed: trials report at integer steps
//! ([`Trial::report`](crate::Trial::report)) and the pruners count resources in steps too. So
//! the plan is exact and identical on every worker (a stored plan compares equal to a rebuilt
//! one, with no floating-point drift), and `s_max` and `n` need no rounding care. A fractional
//! resource (a share of the data set, seconds) is expressed in finer units: `R = 1000` ‰.
//!
//! Rung `i` of bracket `s` stops at `rᵢ = ⌊R / ηˢ⁻ⁱ⌋`. When `R / r_min` is a power of η this is
//! exactly the paper's `R·ηⁱ⁻ˢ` and the first rung of bracket `s_max` is `r_min`. Otherwise the
//! plan is anchored at `R`, as in the paper (`r = R·η⁻ˢ`): the last rung of every bracket still
//! stops at `R` exactly, the lower rungs are rounded down (so two neighbouring rungs differ by
//! about, not exactly, η), and `r_min` is a lower bound — the first rung of bracket `s_max` is
//! `⌊R/η^s_max⌋ ∈ [r_min, η·r_min)`. For `R = 100`, `r_min = 1`, η = 3 the most aggressive
//! bracket stops at 1, 3, 11, 33 and 100.
//!
//! # Other implementations
//! HpBandSter (`hpbandster/optimizers/hyperband.py`, `HyperBand.get_next_iteration`; Falkner,
//! Klein & Hutter, "BOHB", ICML 2018) and DEHB (`src/dehb/optimizers/dehb.py`,
//! `DEHBBase.get_next_iteration`; Awad, Mallik & Hutter, IJCAI 2021) round differently:
//!
//! - they floor the ratio before multiplying, `n = ⌊(s_max+1)/(s+1)⌋·ηˢ`, which for `R = 81`,
//!   η = 3 starts 81, 27, 9, 6 and 5 configurations — [`Rounding::FloorRatio`] gives that;
//! - they keep at least one configuration in every rung (`max(⌊n·η⁻ⁱ⌋, 1)`), which changes
//!   nothing for Hyperband's own brackets (`n ≥ ηˢ` under both roundings) and is what
//!   [`SuccessiveHalvingPlan`] does for a small `n`;
//! - they compute the bracket count with a floating-point logarithm (one bracket fewer at exact
//!   powers such as `R/r_min = 243`, η = 3) and use fractional budgets `R·η⁻ⁱ` where this plan
//!   rounds down to whole steps.
//!
//! Optuna's `HyperbandPruner` (and ferrotune's [`HyperbandPruner`](crate::pruner::HyperbandPruner))
//! is the asynchronous, stopping-style variant: it shares the bracket count and the
//! `⌈(s_max+1)·ηˢ/(s+1)⌉` sizes (as shares of the trials), not the synchronous rungs.

use crate::error::{Error, Result};
use crate::math::floor_log_ratio;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// How Hyperband rounds the number of configurations a bracket starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// The paper's `n = ⌈(s_max+1)·ηˢ/(s+1)⌉` (Li et al. 2017, Algorithm 1): 81, 34, 15, 8, 5
    /// for `R = 81`, η = 3. Every bracket gets about the same total budget `(s_max+1)·R`.
    #[default]
    Ceil,
    /// HpBandSter's and DEHB's `n = ⌊(s_max+1)/(s+1)⌋·ηˢ`: 81, 27, 9, 6, 5 for `R = 81`,
    /// η = 3. Fewer configurations in the middle brackets; for reproducing results of those
    /// libraries.
    FloorRatio,
}

/// One rung of a bracket: how many configurations run, and up to which resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rung {
    /// The number of configurations that run in this rung.
    pub configs: u64,
    /// The resource (steps) each of them runs to before the rung is judged.
    pub resource: u64,
}

/// One bracket of successive halving: its rungs, from the first (most configurations, least
/// resource) to the last (fewest configurations, the maximum resource).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BracketPlan {
    /// Hyperband's bracket index: the bracket has `s + 1` rungs.
    pub s: u32,
    /// The rungs, in order; never empty.
    pub rungs: Vec<Rung>,
}

impl BracketPlan {
    /// The number of configurations the bracket starts (its first rung's).
    pub fn configs(&self) -> u64 {
        self.rungs.first().map_or(0, |r| r.configs)
    }

    /// The resource the first rung runs to.
    pub fn min_resource(&self) -> u64 {
        self.rungs.first().map_or(0, |r| r.resource)
    }

    /// The resource the last rung runs to.
    pub fn max_resource(&self) -> u64 {
        self.rungs.last().map_or(0, |r| r.resource)
    }

    /// The total resource the bracket spends when every trial starts from scratch in every
    /// rung: `Σᵢ nᵢ·rᵢ` (the paper's accounting). With pause and resume a promoted trial only
    /// runs from `rᵢ₋₁` to `rᵢ`, which is [`resumed_budget`](Self::resumed_budget).
    pub fn total_budget(&self) -> u128 {
        self.rungs.iter().fold(0u128, |sum, r| {
            sum.saturating_add(u128::from(r.configs) * u128::from(r.resource))
        })
    }

    /// The total resource the bracket spends when promoted trials resume from their
    /// checkpoints: `n₀·r₀ + Σᵢ₌₁ nᵢ·(rᵢ − rᵢ₋₁)`.
    pub fn resumed_budget(&self) -> u128 {
        let mut previous = 0u64;
        self.rungs.iter().fold(0u128, |sum, r| {
            let extra = r.resource.saturating_sub(previous);
            previous = r.resource;
            sum.saturating_add(u128::from(r.configs) * u128::from(extra))
        })
    }
}

/// `baseᵏ` in `u128`; callers guarantee `baseᵏ ≤ u64::MAX` (so it cannot overflow).
fn pow(base: u64, k: u32) -> u128 {
    u128::from(base).pow(k)
}

/// `x` as `u64`, saturating (callers show that `x ≤ u64::MAX`).
fn to_u64(x: u128) -> u64 {
    u64::try_from(x).unwrap_or(u64::MAX)
}

/// Checks a reduction factor.
fn check_eta(eta: u64) -> Result<()> {
    if eta < 2 {
        return Err(Error::invalid_argument(
            "eta",
            format!(
                "the reduction factor must be >= 2 (each rung keeps the best 1/eta), got {eta}; \
                 use 3 (the papers' default) or another integer >= 2"
            ),
        ));
    }
    Ok(())
}

/// Checks a resource range.
fn check_resources(min_resource: u64, max_resource: u64) -> Result<()> {
    if min_resource == 0 {
        return Err(Error::invalid_argument(
            "min_resource",
            "must be positive (at least 1 step), got 0; use 1, the papers' default",
        ));
    }
    if max_resource < min_resource {
        return Err(Error::invalid_argument(
            "max_resource",
            format!(
                "must be >= min_resource = {min_resource}, got {max_resource}; raise \
                 max_resource or lower min_resource"
            ),
        ));
    }
    Ok(())
}

/// One bracket of synchronous successive halving (Jamieson & Talwalkar 2016): `n_configs`
/// configurations start at the lowest rung, and each rung keeps the best `1/η` of the previous
/// one, from about `min_resource` up to `max_resource`.
///
/// There are `s + 1` rungs with `s = ⌊log_η(max_resource/min_resource)⌋` (in integers); rung
/// `i` runs `max(⌊n_configs/ηⁱ⌋, 1)` configurations to `⌊max_resource/ηˢ⁻ⁱ⌋` (see the
/// [module documentation](self) for the rounding). Keeping at least one configuration matters
/// only when `n_configs < ηˢ`; Hyperband's brackets never need it. Every bracket of a
/// [`HyperbandPlan`] is the successive-halving plan
/// [`HyperbandPlan::successive_halving`] returns.
///
/// Serialized as its four parameters; deserializing validates them as [`new`](Self::new) does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "SuccessiveHalvingFields")]
pub struct SuccessiveHalvingPlan {
    n_configs: u64,
    min_resource: u64,
    max_resource: u64,
    eta: u64,
}

/// [`SuccessiveHalvingPlan`] as stored, before validation.
#[derive(Deserialize)]
struct SuccessiveHalvingFields {
    n_configs: u64,
    min_resource: u64,
    max_resource: u64,
    eta: u64,
}

impl TryFrom<SuccessiveHalvingFields> for SuccessiveHalvingPlan {
    type Error = Error;

    fn try_from(f: SuccessiveHalvingFields) -> Result<Self> {
        SuccessiveHalvingPlan::new(f.n_configs, f.min_resource, f.max_resource, f.eta)
    }
}

impl SuccessiveHalvingPlan {
    /// A successive-halving bracket of `n_configs ≥ 1` configurations over the resources
    /// `1 ≤ min_resource ≤ max_resource` with reduction factor `eta ≥ 2`.
    pub fn new(n_configs: u64, min_resource: u64, max_resource: u64, eta: u64) -> Result<Self> {
        if n_configs == 0 {
            return Err(Error::invalid_argument(
                "n_configs",
                "must be >= 1, got 0; a bracket needs at least one configuration",
            ));
        }
        check_resources(min_resource, max_resource)?;
        check_eta(eta)?;
        Ok(SuccessiveHalvingPlan {
            n_configs,
            min_resource,
            max_resource,
            eta,
        })
    }

    /// The number of configurations the first rung starts.
    pub fn n_configs(&self) -> u64 {
        self.n_configs
    }

    /// The lower bound of the first rung's resource.
    pub fn min_resource(&self) -> u64 {
        self.min_resource
    }

    /// The resource of the last rung.
    pub fn max_resource(&self) -> u64 {
        self.max_resource
    }

    /// The reduction factor η.
    pub fn eta(&self) -> u64 {
        self.eta
    }

    /// `s`: the bracket has `s + 1` rungs, `s = ⌊log_η(max_resource/min_resource)⌋`.
    pub fn s(&self) -> u32 {
        floor_log_ratio(self.max_resource, self.min_resource, self.eta)
    }

    /// The bracket's rungs.
    pub fn bracket(&self) -> BracketPlan {
        let s = self.s();
        let n = u128::from(self.n_configs);
        let r = u128::from(self.max_resource);
        // ηˢ ≤ max_resource/min_resource ≤ u64::MAX, so every power below fits.
        let rungs = (0..=s)
            .map(|i| Rung {
                configs: to_u64(n / pow(self.eta, i)).max(1),
                resource: to_u64(r / pow(self.eta, s - i)),
            })
            .collect();
        BracketPlan { s, rungs }
    }

    /// The bracket's total budget, [`BracketPlan::total_budget`].
    pub fn total_budget(&self) -> u128 {
        self.bracket().total_budget()
    }
}

/// Hyperband's plan (Li et al. 2017): `s_max + 1` brackets of successive halving over the
/// resources `[min_resource, max_resource]` with reduction factor η, from the most aggressive
/// (`s = s_max`: many configurations, starting at about `min_resource`) to plain random search
/// (`s = 0`: a few configurations, all run to `max_resource`). See the
/// [module documentation](self) for the formulas, the rounding and how other implementations
/// differ.
///
/// Serialized as its parameters (`max_resource`, `min_resource`, `eta`, `rounding`);
/// deserializing validates them as [`new`](Self::new) does, and a missing `rounding` is
/// [`Rounding::Ceil`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "HyperbandFields")]
pub struct HyperbandPlan {
    max_resource: u64,
    min_resource: u64,
    eta: u64,
    rounding: Rounding,
}

/// [`HyperbandPlan`] as stored, before validation.
#[derive(Deserialize)]
struct HyperbandFields {
    max_resource: u64,
    min_resource: u64,
    eta: u64,
    #[serde(default)]
    rounding: Rounding,
}

impl TryFrom<HyperbandFields> for HyperbandPlan {
    type Error = Error;

    fn try_from(f: HyperbandFields) -> Result<Self> {
        Ok(HyperbandPlan::new(f.max_resource, f.min_resource, f.eta)?.with_rounding(f.rounding))
    }
}

impl HyperbandPlan {
    /// Hyperband over `1 ≤ min_resource ≤ max_resource` with reduction factor `eta ≥ 2`,
    /// rounding as the paper does ([`Rounding::Ceil`]). The papers use `min_resource = 1`
    /// ([`with_max_resource`](Self::with_max_resource)) and η = 3.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `min_resource` (0), `max_resource` (below
    /// `min_resource`) or `eta` (below 2).
    pub fn new(max_resource: u64, min_resource: u64, eta: u64) -> Result<Self> {
        check_resources(min_resource, max_resource)?;
        check_eta(eta)?;
        Ok(HyperbandPlan {
            max_resource,
            min_resource,
            eta,
            rounding: Rounding::Ceil,
        })
    }

    /// Hyperband with the papers' `min_resource = 1`: [`new(max_resource, 1, eta)`](Self::new).
    pub fn with_max_resource(max_resource: u64, eta: u64) -> Result<Self> {
        Self::new(max_resource, 1, eta)
    }

    /// The same plan with another [`Rounding`] of the brackets' sizes.
    #[must_use]
    pub fn with_rounding(mut self, rounding: Rounding) -> Self {
        self.rounding = rounding;
        self
    }

    /// The maximum resource `R`: the last rung of every bracket runs to it.
    pub fn max_resource(&self) -> u64 {
        self.max_resource
    }

    /// The minimum resource `r_min`.
    pub fn min_resource(&self) -> u64 {
        self.min_resource
    }

    /// The reduction factor η.
    pub fn eta(&self) -> u64 {
        self.eta
    }

    /// How the brackets' sizes are rounded.
    pub fn rounding(&self) -> Rounding {
        self.rounding
    }

    /// `s_max = ⌊log_η(R/r_min)⌋`, exact: `r_min·η^s_max ≤ R < r_min·η^(s_max+1)`.
    pub fn s_max(&self) -> u32 {
        floor_log_ratio(self.max_resource, self.min_resource, self.eta)
    }

    /// The number of brackets, `s_max + 1`.
    pub fn n_brackets(&self) -> usize {
        self.s_max() as usize + 1
    }

    /// The number of configurations bracket `s ≤ s_max` starts.
    fn n_configs(&self, s: u32) -> u64 {
        let s_max = u128::from(self.s_max());
        let s_wide = u128::from(s);
        let eta_s = pow(self.eta, s);
        // Both are ≤ η^s_max ≤ R/r_min ≤ u64::MAX: with k = s_max − s,
        // (s+1+k)/(s+1) ≤ 1+k ≤ 2ᵏ ≤ ηᵏ, and η^s_max is an integer.
        to_u64(match self.rounding {
            Rounding::Ceil => ((s_max + 1) * eta_s).div_ceil(s_wide + 1),
            Rounding::FloorRatio => (s_max + 1) / (s_wide + 1) * eta_s,
        })
    }

    /// Bracket `s` as a successive-halving plan: `n` configurations (rounded as
    /// [`rounding`](Self::rounding) says) from `⌊R/ηˢ⌋` to `R`; `None` when `s > s_max`.
    pub fn successive_halving(&self, s: u32) -> Option<SuccessiveHalvingPlan> {
        if s > self.s_max() {
            return None;
        }
        // ⌊R/ηˢ⌋ ≥ r_min ≥ 1 (as r_min·ηˢ ≤ R) and ⌊R/ηˢ⌋·η^(s+1) > R (⌊x⌋ > x/η for x ≥ 1),
        // so the plan has exactly s + 1 rungs.
        let first = to_u64(u128::from(self.max_resource) / pow(self.eta, s));
        Some(SuccessiveHalvingPlan {
            n_configs: self.n_configs(s),
            min_resource: first,
            max_resource: self.max_resource,
            eta: self.eta,
        })
    }

    /// Bracket `s`'s rungs; `None` when `s > s_max`.
    pub fn bracket(&self, s: u32) -> Option<BracketPlan> {
        self.successive_halving(s).map(|sh| sh.bracket())
    }

    /// All brackets in the paper's order, `s = s_max, …, 0` (most aggressive first).
    pub fn brackets(&self) -> Vec<BracketPlan> {
        (0..=self.s_max())
            .rev()
            .filter_map(|s| self.bracket(s))
            .collect()
    }

    /// The total budget of one pass over all brackets, `Σ_s` [`BracketPlan::total_budget`].
    pub fn total_budget(&self) -> u128 {
        self.brackets()
            .iter()
            .fold(0u128, |sum, b| sum.saturating_add(b.total_budget()))
    }
}

/// The trials of a finished rung that go on to the next one: the best `⌊n/η⌋` of the `n`
/// results, and at least one (when there is a result), best first.
///
/// `results` are `(trial number, value)` pairs, lower is better (negate the values of a
/// maximized objective); equal values are ordered by trial number, smaller first, so the
/// choice is deterministic and the same on every worker. A NaN value ranks after every number
/// (a diverged trial is never promoted ahead of one that reported a value). Each trial should
/// appear once.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `eta` when it is below 2.
pub fn promotions(results: &[(u64, f64)], eta: u64) -> Result<Vec<u64>> {
    check_eta(eta)?;
    let keep = (results.len() / usize::try_from(eta).unwrap_or(usize::MAX)).max(1);
    let mut ranked = results.to_vec();
    ranked.sort_by(|(a_number, a), (b_number, b)| {
        a.is_nan()
            .cmp(&b.is_nan())
            .then(a.partial_cmp(b).unwrap_or(Ordering::Equal))
            .then(a_number.cmp(b_number))
    });
    Ok(ranked
        .into_iter()
        .take(keep)
        .map(|(number, _)| number)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `(configs, resource)` of every rung of every bracket, in the paper's order.
    fn table(plan: &HyperbandPlan) -> Vec<Vec<(u64, u64)>> {
        plan.brackets()
            .iter()
            .map(|b| b.rungs.iter().map(|r| (r.configs, r.resource)).collect())
            .collect()
    }

    fn starts(plan: &HyperbandPlan) -> Vec<u64> {
        plan.brackets().iter().map(BracketPlan::configs).collect()
    }

    #[test]
    fn the_papers_table_for_81_and_3() -> Result<()> {
        let plan = HyperbandPlan::with_max_resource(81, 3)?;
        assert_eq!(plan.s_max(), 4);
        assert_eq!(
            table(&plan),
            vec![
                vec![(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
                vec![(34, 3), (11, 9), (3, 27), (1, 81)],
                vec![(15, 9), (5, 27), (1, 81)],
                vec![(8, 27), (2, 81)],
                vec![(5, 81)],
            ]
        );
        let s: Vec<u32> = plan.brackets().iter().map(|b| b.s).collect();
        assert_eq!(s, [4, 3, 2, 1, 0]);
        // Σ nᵢ·rᵢ per bracket, as the paper accounts (each rung from scratch); bracket 3:
        // 34·3 + 11·9 + 3·27 + 1·81.
        let budgets: Vec<u128> = plan.brackets().iter().map(|b| b.total_budget()).collect();
        assert_eq!(budgets, [405, 363, 351, 378, 405]);
        assert_eq!(plan.total_budget(), 1902);
        let resumed: Vec<u128> = plan.brackets().iter().map(|b| b.resumed_budget()).collect();
        // Bracket 4: 81·1 + 27·2 + 9·6 + 3·18 + 1·54.
        assert_eq!(resumed, [297, 276, 279, 324, 405]);
        Ok(())
    }

    #[test]
    fn floor_ratio_gives_hpbandsters_sizes() -> Result<()> {
        let plan = HyperbandPlan::with_max_resource(81, 3)?.with_rounding(Rounding::FloorRatio);
        assert_eq!(starts(&plan), [81, 27, 9, 6, 5]);
        assert_eq!(
            table(&plan)[3],
            vec![(6, 27), (2, 81)],
            "same resources, smaller bracket"
        );
        Ok(())
    }

    #[test]
    fn exact_powers_keep_every_bracket() -> Result<()> {
        // 3⁵ = 243: six brackets (a floating-point log gives 4.999… and five).
        let plan = HyperbandPlan::with_max_resource(243, 3)?;
        assert_eq!(plan.s_max(), 5);
        assert_eq!(plan.n_brackets(), 6);
        let brackets = plan.brackets();
        assert_eq!(brackets.len(), 6);
        assert_eq!(brackets[0].rungs.len(), 6);
        assert_eq!(brackets[0].min_resource(), 1);
        // ⌈6·3ˢ/(s+1)⌉ for s = 5..0.
        assert_eq!(starts(&plan), [243, 98, 41, 18, 9, 6]);
        assert_eq!(HyperbandPlan::with_max_resource(242, 3)?.n_brackets(), 5);
        assert_eq!(HyperbandPlan::new(486, 2, 3)?.n_brackets(), 6);
        assert_eq!(HyperbandPlan::new(1000, 1, 10)?.n_brackets(), 4);
        Ok(())
    }

    #[test]
    fn a_range_that_is_not_a_power_is_anchored_at_the_maximum() -> Result<()> {
        let plan = HyperbandPlan::with_max_resource(100, 3)?;
        assert_eq!(plan.s_max(), 4);
        let resources: Vec<u64> = plan.brackets()[0]
            .rungs
            .iter()
            .map(|r| r.resource)
            .collect();
        assert_eq!(resources, [1, 3, 11, 33, 100]);
        // r_min is a lower bound: R = 8, η = 3 starts its aggressive bracket at ⌊8/3⌋ = 2.
        let plan = HyperbandPlan::with_max_resource(8, 3)?;
        assert_eq!(table(&plan), vec![vec![(3, 2), (1, 8)], vec![(2, 8)]]);
        Ok(())
    }

    #[test]
    fn degenerate_ranges_have_one_bracket() -> Result<()> {
        let plan = HyperbandPlan::new(5, 5, 3)?;
        assert_eq!(table(&plan), vec![vec![(1, 5)]]);
        let plan = HyperbandPlan::new(14, 5, 3)?;
        assert_eq!(table(&plan), vec![vec![(1, 14)]]);
        Ok(())
    }

    #[test]
    fn huge_ranges_do_not_overflow() -> Result<()> {
        let plan = HyperbandPlan::with_max_resource(u64::MAX, 2)?;
        assert_eq!(plan.n_brackets(), 64);
        let brackets = plan.brackets();
        assert_eq!(brackets[0].configs(), 1 << 63);
        assert!(brackets.iter().all(|b| b.max_resource() == u64::MAX));
        assert!(plan.total_budget() > 0);
        let plan = HyperbandPlan::with_max_resource(u64::MAX, u64::MAX)?;
        assert_eq!(starts(&plan), [u64::MAX, 2]);
        Ok(())
    }

    #[test]
    fn standalone_successive_halving() -> Result<()> {
        let sh = SuccessiveHalvingPlan::new(20, 1, 27, 3)?;
        assert_eq!(sh.s(), 3);
        let rungs: Vec<(u64, u64)> = sh
            .bracket()
            .rungs
            .iter()
            .map(|r| (r.configs, r.resource))
            .collect();
        assert_eq!(rungs, [(20, 1), (6, 3), (2, 9), (1, 27)]);
        // Fewer configurations than ηˢ: every rung keeps at least one (as HpBandSter does).
        let sh = SuccessiveHalvingPlan::new(2, 1, 27, 3)?;
        let configs: Vec<u64> = sh.bracket().rungs.iter().map(|r| r.configs).collect();
        assert_eq!(configs, [2, 1, 1, 1]);
        assert_eq!(sh.total_budget(), 2 + 3 + 9 + 27);
        Ok(())
    }

    fn invalid_name<T: std::fmt::Debug>(r: Result<T>) -> &'static str {
        match r {
            Err(Error::InvalidArgument { name, .. }) => name,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn constructors_validate() {
        assert_eq!(invalid_name(HyperbandPlan::new(81, 0, 3)), "min_resource");
        assert_eq!(invalid_name(HyperbandPlan::new(4, 5, 3)), "max_resource");
        assert_eq!(invalid_name(HyperbandPlan::new(0, 1, 3)), "max_resource");
        assert_eq!(invalid_name(HyperbandPlan::new(81, 1, 1)), "eta");
        assert_eq!(invalid_name(HyperbandPlan::new(81, 1, 0)), "eta");
        assert_eq!(
            invalid_name(SuccessiveHalvingPlan::new(0, 1, 9, 3)),
            "n_configs"
        );
        assert_eq!(
            invalid_name(SuccessiveHalvingPlan::new(9, 10, 9, 3)),
            "max_resource"
        );
        assert_eq!(invalid_name(promotions(&[(0, 1.0)], 1)), "eta");
        // The messages name the value and the fix.
        let message = HyperbandPlan::new(4, 5, 3)
            .map(|_| ())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("max_resource"), "{message}");
        assert!(message.contains("got 4"), "{message}");
        assert!(message.contains("min_resource = 5"), "{message}");
        let message = HyperbandPlan::new(81, 1, 1)
            .map(|_| ())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("got 1") && message.contains(">= 2"),
            "{message}"
        );
    }

    #[test]
    fn plans_round_trip_through_json_and_are_validated() -> Result<()> {
        let plan = HyperbandPlan::new(243, 3, 3)?.with_rounding(Rounding::FloorRatio);
        let json = serde_json::to_string(&plan)?;
        assert_eq!(
            json,
            r#"{"max_resource":243,"min_resource":3,"eta":3,"rounding":"floor_ratio"}"#
        );
        assert_eq!(serde_json::from_str::<HyperbandPlan>(&json)?, plan);
        let old: HyperbandPlan =
            serde_json::from_str(r#"{"max_resource":81,"min_resource":1,"eta":3}"#)?;
        assert_eq!(old.rounding(), Rounding::Ceil);
        let bad = serde_json::from_str::<HyperbandPlan>(
            r#"{"max_resource":81,"min_resource":1,"eta":1}"#,
        );
        assert!(bad.is_err_and(|e| e.to_string().contains("eta")));

        let sh = SuccessiveHalvingPlan::new(20, 1, 27, 3)?;
        let json = serde_json::to_string(&sh)?;
        assert_eq!(serde_json::from_str::<SuccessiveHalvingPlan>(&json)?, sh);
        assert!(serde_json::from_str::<SuccessiveHalvingPlan>(
            r#"{"n_configs":0,"min_resource":1,"max_resource":27,"eta":3}"#
        )
        .is_err());

        let bracket = plan.brackets().swap_remove(1);
        let json = serde_json::to_string(&bracket)?;
        assert_eq!(serde_json::from_str::<BracketPlan>(&json)?, bracket);
        Ok(())
    }

    #[test]
    fn promotions_keep_the_best_fraction() -> Result<()> {
        let results = [(0, 5.0), (1, 1.0), (2, 3.0), (3, 1.0), (4, 9.0), (5, 2.0)];
        // ⌊6/3⌋ = 2; trials 1 and 3 tie at 1.0 and are ordered by number.
        assert_eq!(promotions(&results, 3)?, [1, 3]);
        assert_eq!(promotions(&results, 2)?, [1, 3, 5]);
        // At least one.
        assert_eq!(promotions(&results[..2], 3)?, [1]);
        assert_eq!(promotions(&[], 3)?, Vec::<u64>::new());
        // The order of the input does not matter.
        let mut reversed = results;
        reversed.reverse();
        assert_eq!(promotions(&reversed, 2)?, [1, 3, 5]);
        // NaN ranks last, after infinities; −0 and 0 tie.
        let odd = [(7, f64::NAN), (8, f64::INFINITY), (9, 0.0), (2, -0.0)];
        assert_eq!(promotions(&odd, 2)?, [2, 9]);
        assert_eq!(promotions(&[(7, f64::NAN), (8, f64::INFINITY)], 2)?, [8]);
        assert_eq!(promotions(&[(7, f64::NAN), (3, f64::NAN)], 2)?, [3]);
        Ok(())
    }

    /// `(R, r_min, η)` with `R/r_min` anywhere up to about 10⁶.
    fn ranges() -> impl Strategy<Value = (u64, u64, u64)> {
        (2u64..=12, 1u64..=50).prop_flat_map(|(eta, r_min)| {
            (r_min..=r_min * 1_000_000).prop_map(move |r| (r, r_min, eta))
        })
    }

    proptest! {
        #[test]
        fn the_papers_table_at_any_scale(r_min in 1u64..=1_000_000) {
            // R/r_min = 81, η = 3: the paper's sizes at every scale, resources times r_min.
            let plan = HyperbandPlan::new(81 * r_min, r_min, 3)?;
            let sizes: Vec<Vec<u64>> = plan
                .brackets()
                .iter()
                .map(|b| b.rungs.iter().map(|r| r.configs).collect())
                .collect();
            let expected: Vec<Vec<u64>> = vec![
                vec![81, 27, 9, 3, 1],
                vec![34, 11, 3, 1],
                vec![15, 5, 1],
                vec![8, 2],
                vec![5],
            ];
            prop_assert_eq!(sizes, expected);
            let first: Vec<u64> = plan.brackets().iter().map(BracketPlan::min_resource).collect();
            prop_assert_eq!(first, [1, 3, 9, 27, 81].map(|k| k * r_min));
            let floor = plan.with_rounding(Rounding::FloorRatio);
            prop_assert_eq!(starts(&floor), [81, 27, 9, 6, 5]);
        }

        #[test]
        fn plans_hold_their_invariants((max, r_min, eta) in ranges()) {
            let plan = HyperbandPlan::new(max, r_min, eta)?;
            let s_max = plan.s_max();
            // s_max is the exact integer log: η^s_max ≤ R/r_min < η^(s_max+1).
            let (eta_w, low, high) = (u128::from(eta), u128::from(r_min), u128::from(max));
            prop_assert!(low * eta_w.pow(s_max) <= high);
            prop_assert!(low * eta_w.pow(s_max + 1) > high);
            let is_power = low * eta_w.pow(s_max) == high;

            let brackets = plan.brackets();
            prop_assert_eq!(brackets.len(), plan.n_brackets());
            for (b, bracket) in brackets.iter().enumerate() {
                let s = s_max - b as u32;
                prop_assert_eq!(bracket.s, s);
                prop_assert_eq!(bracket.rungs.len(), s as usize + 1);
                // n = ⌈(s_max+1)·ηˢ/(s+1)⌉ exactly.
                let n = u128::from(bracket.configs());
                let target = u128::from(s_max + 1) * eta_w.pow(s);
                prop_assert!(n * u128::from(s + 1) >= target);
                prop_assert!((n - 1) * u128::from(s + 1) < target);
                // Rungs: configs ⌊n/ηⁱ⌋ ≥ 1, non-increasing; resources increasing, ≤ R,
                // ≥ r_min, the last one R.
                for (i, rung) in bracket.rungs.iter().enumerate() {
                    prop_assert_eq!(u128::from(rung.configs), n / eta_w.pow(i as u32));
                    prop_assert!(rung.configs >= 1);
                    prop_assert!(rung.resource <= max && rung.resource >= r_min);
                    if is_power {
                        // Exactly the paper's R·η^(i−s).
                        prop_assert_eq!(
                            u128::from(rung.resource),
                            low * eta_w.pow(s_max - s + i as u32)
                        );
                    }
                }
                for pair in bracket.rungs.windows(2) {
                    prop_assert!(pair[1].configs <= pair[0].configs);
                    prop_assert!(pair[1].resource > pair[0].resource);
                    // The next rung is the best 1/η of this one.
                    prop_assert_eq!(pair[1].configs, pair[0].configs / eta);
                }
                prop_assert_eq!(bracket.max_resource(), max);
                prop_assert!(u128::from(bracket.min_resource()) < low * eta_w.pow(s_max - s + 1));
                // The bracket is the successive-halving plan of its sizes.
                let sh = SuccessiveHalvingPlan::new(
                    bracket.configs(),
                    bracket.min_resource(),
                    max,
                    eta,
                )?;
                prop_assert_eq!(&sh.bracket(), bracket);
                prop_assert_eq!(plan.successive_halving(s), Some(sh));
            }
            prop_assert_eq!(plan.bracket(s_max + 1), None);

            // The floor convention: ⌊(s_max+1)/(s+1)⌋·ηˢ, never more than the paper's.
            let floor = plan.with_rounding(Rounding::FloorRatio);
            for (fb, cb) in floor.brackets().iter().zip(&brackets) {
                let s = fb.s;
                prop_assert_eq!(
                    u128::from(fb.configs()),
                    u128::from((s_max + 1) / (s + 1)) * eta_w.pow(s)
                );
                prop_assert!(fb.configs() <= cb.configs());
                prop_assert_eq!(
                    fb.rungs.iter().map(|r| r.resource).collect::<Vec<_>>(),
                    cb.rungs.iter().map(|r| r.resource).collect::<Vec<_>>()
                );
            }

            let json = serde_json::to_string(&plan)?;
            prop_assert_eq!(serde_json::from_str::<HyperbandPlan>(&json)?, plan);
        }

        #[test]
        fn promotions_are_the_best_and_deterministic(
            values in proptest::collection::vec(-3i8..3, 0..40),
            eta in 2u64..6,
        ) {
            let results: Vec<(u64, f64)> = values
                .iter()
                .enumerate()
                .map(|(n, &v)| (n as u64, f64::from(v)))
                .collect();
            let promoted = promotions(&results, eta)?;
            let expected_len = if results.is_empty() {
                0
            } else {
                (results.len() / eta as usize).max(1)
            };
            prop_assert_eq!(promoted.len(), expected_len);
            // Every promoted trial is at least as good as every other, ties by number.
            let key = |n: u64| (values[n as usize], n);
            for &p in &promoted {
                for (n, _) in &results {
                    if !promoted.contains(n) {
                        prop_assert!(key(p) < key(*n));
                    }
                }
            }
            let mut shuffled = results.clone();
            shuffled.reverse();
            prop_assert_eq!(promotions(&shuffled, eta)?, promoted);
        }
    }
}
