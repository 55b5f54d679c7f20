//! `BohbSampler`: the model of BOHB (Falkner, Klein & Hutter, "BOHB: Robust and Efficient
//! Hyperparameter Optimization at Scale", ICML 2018, Algorithm 2) as a sampler, with the
//! defaults of HpBandSter's config generator (`hpbandster/optimizers/config_generators/bohb.py`).
//!
//! BOHB is Hyperband whose new configurations come from a TPE-like model fit at one budget.
//! Here the budgets are the steps at which trials report intermediate values, so the sampler
//! combines with the pruners that already stop trials early
//! ([`SuccessiveHalvingPruner`](crate::pruner::SuccessiveHalvingPruner) gives BOHB with ASHA's
//! stopping rule, [`HyperbandPruner`](crate::pruner::HyperbandPruner) gives it Hyperband's
//! brackets).
//!
//! The rules are documented on [`BohbSampler`].

use super::{intersect_with, Sampler, SearchSpace};
use crate::error::{Error, Result};
use crate::rng::TrialRng;
use crate::space::Distribution;
use crate::study::StudyView;
use crate::trial::{FrozenTrial, TrialState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// BOHB's settings; [`Default`] gives HpBandSter's (`config_generators/bohb.py`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BohbConfig {
    /// The percentage of the observations at the model's budget that form the good group
    /// (at least `min_points_in_model` of them). Between 1 and 99; default 15.
    pub top_n_percent: u32,
    /// The probability that a proposal is uniformly random instead of model-based. In
    /// `[0, 1]`; default 1/3.
    pub random_fraction: f64,
    /// How much wider than the good model's bandwidths the candidates are drawn (continuous
    /// dimensions only). Positive; default 3.
    pub bandwidth_factor: f64,
    /// The smallest kernel bandwidth, on the unit scale (and for the categorical kernels' `λ`).
    /// Positive; default 1e-3.
    pub min_bandwidth: f64,
    /// Candidates drawn from the good model per proposal. At least 1; default 64.
    pub num_samples: usize,
    /// Observations each group needs at the least (`N_min`); `None` (the default) means the
    /// number of modelled parameters plus one, and smaller values are raised to that.
    pub min_points_in_model: Option<usize>,
}

impl Default for BohbConfig {
    fn default() -> Self {
        BohbConfig {
            top_n_percent: 15,
            random_fraction: 1.0 / 3.0,
            bandwidth_factor: 3.0,
            min_bandwidth: 1e-3,
            num_samples: 64,
            min_points_in_model: None,
        }
    }
}

impl BohbConfig {
    /// Checks every setting, naming the bad value and the accepted range.
    pub fn validate(&self) -> Result<()> {
        if !(1..=99).contains(&self.top_n_percent) {
            return Err(Error::invalid_argument(
                "top_n_percent",
                format!(
                    "must be a percentage between 1 and 99, got {}; BOHB's default is 15",
                    self.top_n_percent
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.random_fraction) {
            return Err(Error::invalid_argument(
                "random_fraction",
                format!(
                    "must be a probability in [0, 1], got {}; BOHB's default is 1/3",
                    self.random_fraction
                ),
            ));
        }
        if !(self.bandwidth_factor.is_finite() && self.bandwidth_factor > 0.0) {
            return Err(Error::invalid_argument(
                "bandwidth_factor",
                format!(
                    "must be positive and finite, got {}; BOHB's default is 3",
                    self.bandwidth_factor
                ),
            ));
        }
        if !(self.min_bandwidth.is_finite() && self.min_bandwidth > 0.0) {
            return Err(Error::invalid_argument(
                "min_bandwidth",
                format!(
                    "must be positive and finite, got {}; BOHB's default is 1e-3",
                    self.min_bandwidth
                ),
            ));
        }
        if self.num_samples == 0 {
            return Err(Error::invalid_argument(
                "num_samples",
                "needs at least one candidate per proposal; BOHB's default is 64",
            ));
        }
        Ok(())
    }
}

/// A budget: a step with intermediate values, or the full budget of Complete trials that
/// reported none (ranked above every step).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Budget {
    Step(u64),
    Full,
}

/// The observations of one trial: `(budget, loss)` pairs. Losses that are not finite, and all
/// losses of an infeasible trial, are `+∞`.
fn trial_observations(t: &FrozenTrial, sign: f64) -> Vec<(Budget, f64)> {
    let feasible = t.is_feasible();
    let loss = |v: f64| {
        let l = v * sign;
        if feasible && l.is_finite() {
            l
        } else {
            f64::INFINITY
        }
    };
    let final_value = match t.state {
        TrialState::Complete => Some(t.value().unwrap_or(f64::NAN)),
        _ => None,
    };
    let last = t.last_step();
    let mut out: Vec<(Budget, f64)> = t
        .intermediate_values
        .iter()
        .map(|(&step, values)| {
            let v = match final_value {
                Some(f) if Some(step) == last => f,
                _ => values.first().copied().unwrap_or(f64::NAN),
            };
            (Budget::Step(step), loss(v))
        })
        .collect();
    if let (Some(f), None) = (final_value, last) {
        out.push((Budget::Full, loss(f)));
    }
    out
}

/// The split HpBandSter makes of `n` sorted observations with `n_min` points at the least
/// and `top_n_percent`: `(n_good, n_bad)`.
fn split_sizes(n: usize, n_min: usize, top_n_percent: u32) -> (usize, usize) {
    let top = top_n_percent as usize;
    let n_good = n_min.max(top * n / 100).min(n);
    let n_bad = n_min.max((100 - top) * n / 100).min(n - n_good);
    (n_good, n_bad)
}

/// Whether `n` observations at one budget are enough for a model of `d` parameters: the
/// paper's `n ≥ N_min + 2` and HpBandSter's "each group has more rows than dimensions".
fn enough(n: usize, n_min: usize, d: usize, top_n_percent: u32) -> bool {
    let (n_good, n_bad) = split_sizes(n, n_min, top_n_percent);
    n >= n_min + 2 && n_good > d && n_bad > d
}

/// The largest budget whose observation count is [`enough`], given the counts per budget.
fn select_budget(
    counts: &BTreeMap<Budget, usize>,
    n_min: usize,
    d: usize,
    top_n_percent: u32,
) -> Option<Budget> {
    counts
        .iter()
        .rev()
        .find(|(_, &n)| enough(n, n_min, d, top_n_percent))
        .map(|(&b, _)| b)
}

/// One modelled dimension: continuous on the unit interval, or categorical with `n` choices.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Continuous,
    Categorical(usize),
}

fn kind_of(dist: &Distribution) -> Kind {
    match dist {
        Distribution::Categorical(c) => Kind::Categorical(c.choices().len()),
        _ => Kind::Continuous,
    }
}

/// A product kernel density estimate over rows of `d` coordinates (unit scale for continuous
/// dimensions, choice index for categorical ones).
#[derive(Debug)]
struct Kde {
    /// Row-major data, `n × d`.
    data: Vec<f64>,
    /// Per dimension: the Gaussian bandwidth, or the Aitchison–Aitken `λ`.
    bw: Vec<f64>,
    n: usize,
}

impl Kde {
    /// Fits statsmodels' `normal_reference` bandwidths, clipped below at `min_bw` (and
    /// categorical `λ` above at `(c − 1)/c`).
    fn fit(data: Vec<f64>, kinds: &[Kind], min_bw: f64) -> Kde {
        let d = kinds.len();
        let n = data.len() / d.max(1);
        let scale = 1.06 * (n as f64).powf(-1.0 / (4.0 + d as f64));
        let bw = kinds
            .iter()
            .enumerate()
            .map(|(j, kind)| {
                let column = data.iter().skip(j).step_by(d);
                let mean = column.clone().sum::<f64>() / n as f64;
                let var = column.map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
                let h = (scale * var.sqrt()).max(min_bw);
                match *kind {
                    Kind::Continuous => h,
                    Kind::Categorical(c) => h.min((c as f64 - 1.0) / c as f64).max(min_bw),
                }
            })
            .collect();
        Kde { data, bw, n }
    }

    /// `log max(pdf(x), 1e-32)`.
    fn log_pdf(&self, x: &[f64], kinds: &[Kind], terms: &mut Vec<f64>) -> f64 {
        const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
        let d = kinds.len();
        terms.clear();
        for row in self.data.chunks_exact(d) {
            let mut s = 0.0;
            for j in 0..d {
                let h = self.bw[j];
                s += match kinds[j] {
                    Kind::Continuous => {
                        let z = (x[j] - row[j]) / h;
                        -0.5 * z * z - LN_SQRT_2PI - h.ln()
                    }
                    Kind::Categorical(c) => {
                        // Choice indices are whole numbers.
                        if (x[j] - row[j]).abs() < 0.5 {
                            (1.0 - h).ln()
                        } else {
                            (h / (c as f64 - 1.0)).ln()
                        }
                    }
                };
            }
            terms.push(s);
        }
        let log_pdf = crate::math::log_sum_exp(terms) - (self.n as f64).ln();
        log_pdf.max(1e-32f64.ln())
    }

    /// A candidate around a random row, with continuous bandwidths times `factor`.
    fn sample(&self, kinds: &[Kind], factor: f64, rng: &mut TrialRng, out: &mut Vec<f64>) {
        let d = kinds.len();
        let i = rng.below(self.n as u64) as usize;
        let row = &self.data[i * d..(i + 1) * d];
        out.clear();
        for j in 0..d {
            out.push(match kinds[j] {
                Kind::Continuous => truncated_normal(row[j], factor * self.bw[j], rng),
                Kind::Categorical(c) => {
                    if rng.uniform() < 1.0 - self.bw[j] {
                        row[j]
                    } else {
                        rng.below(c as u64) as f64
                    }
                }
            });
        }
    }
}

/// A normal draw around `mean` with `scale`, truncated to `[0, 1]`, by rejection. Every mean
/// lies in `[0, 1]`, so a draw is accepted with probability at least `min(½, 0.34/scale)`;
/// after 1,000 rejections (a scale in the hundreds) the law is as good as uniform and a
/// uniform draw is returned.
fn truncated_normal(mean: f64, scale: f64, rng: &mut TrialRng) -> f64 {
    for _ in 0..1000 {
        let x = mean + scale * rng.normal();
        if (0.0..=1.0).contains(&x) {
            return x;
        }
    }
    rng.uniform()
}

/// One finished trial as the model sees it: its number, its coordinates (unit scale or
/// choice index) and its `(budget, loss)` observations.
type Row = (u64, Vec<f64>, Vec<(Budget, f64)>);

/// The model of BOHB as a sampler, with HpBandSter's defaults ([`BohbConfig`]). Combine it
/// with a pruner that stops trials at intermediate steps
/// ([`PrunerSpec::successive_halving`](crate::PrunerSpec::successive_halving),
/// [`PrunerSpec::hyperband`](crate::PrunerSpec::hyperband)).
///
/// # Observations and budgets
/// Every Pruned or Complete trial contributes one observation per step at which it reported an
/// intermediate value (its first objective's value there). A Complete trial's last step carries
/// its final value instead of the intermediate one, and a Complete trial that reported nothing
/// is observed at a budget above every step (the full budget). Losses are values turned to
/// "smaller is better"; a loss that is not finite, or any loss of a trial that breaks its
/// constraints, becomes `+∞`, so such trials rank last — HpBandSter's rule for crashed runs and
/// non-finite losses.
///
/// # Which budget's model
/// HpBandSter fits a model for budget `b` once it holds at least `N_min` results there and both
/// of its groups (below) have more rows than there are dimensions, and always samples from the
/// model of the largest budget that has one; the paper's Algorithm 2 asks for
/// `|D_b| ≥ N_min + 2`. Both conditions are applied: the model uses the **largest** budget `b`
/// whose `N` observations satisfy `N ≥ N_min + 2` and `N − n_good(N) > d`, with `d` the number
/// of modelled parameters. When no budget does, the proposal is uniformly random.
///
/// # The model
/// `N_min` is `min_points_in_model`, `d + 1` when unset and raised to `d + 1` when smaller (as
/// HpBandSter does, with a warning there). The observations at `b` are sorted by loss (ties by
/// trial number); the first `n_good = max(N_min, ⌊top_n_percent·N/100⌋)` are good, the next
/// `min(max(N_min, ⌊(100 − top_n_percent)·N/100⌋), N − n_good)` bad. Each group gets a product
/// kernel density estimate as statsmodels' `KDEMultivariate(bw="normal_reference")` builds it:
/// bandwidths `1.06·σ·n^(−1/(4+d))` (`σ` the population standard deviation of the column,
/// `n` the group's size), clipped below at `min_bandwidth`. Floats and integers ("continuous"
/// in BOHB; integers ordinal) live on the unit interval of [`Distribution::to_unit`] with
/// Gaussian kernels; categoricals keep their index with Aitchison–Aitken kernels (`1 − λ` on the
/// observed choice, `λ/(c − 1)` on each other one).
///
/// A proposal draws `num_samples` candidates: a good observation chosen uniformly, then per
/// continuous dimension a normal around it with its bandwidth times `bandwidth_factor`,
/// truncated to `[0, 1]`, and per categorical dimension its choice kept with probability
/// `1 − λ`, else a uniform choice (the factor does not apply there, as in HpBandSter). The
/// candidate maximizing `max(l(x), 1e-32) / max(g(x), 1e-32)` wins. With probability
/// `random_fraction` the whole proposal is uniformly random instead.
///
/// Deliberate differences from HpBandSter: statsmodels' Aitchison–Aitken kernel counts the
/// levels present in the data (infinite or undefined densities when a choice never occurs, a
/// case HpBandSter's code comments on); here `c` is the number of choices and `λ` is at most
/// `(c − 1)/c`, so the kernel stays a distribution. Only the parameters every finished trial
/// shares with one distribution (the intersection search space) are modelled; conditional or
/// dynamic parameters outside it are drawn uniformly at random, one at a time, instead of
/// HpBandSter's imputation of inactive values. BOHB optimizes one objective: a study with
/// several is refused.
#[derive(Clone, Debug, Default)]
pub struct BohbSampler {
    config: BohbConfig,
}

impl BohbSampler {
    /// A BOHB sampler; checks the settings.
    pub fn new(config: BohbConfig) -> Result<Self> {
        config.validate()?;
        Ok(BohbSampler { config })
    }

    /// The settings.
    pub fn config(&self) -> &BohbConfig {
        &self.config
    }

    /// `N_min` for `d` modelled parameters.
    fn n_min(&self, d: usize) -> usize {
        self.config.min_points_in_model.unwrap_or(0).max(d + 1)
    }

    /// The model's proposal (internal values, in `params` order), or `None` when no budget
    /// has enough observations.
    fn propose(
        &self,
        study: &StudyView<'_>,
        trial: &FrozenTrial,
        params: &[(&str, &Distribution)],
        rng: &mut TrialRng,
    ) -> Result<Option<Vec<f64>>> {
        let sign = study.directions().first().map_or(1.0, |d| d.to_loss(1.0));
        let kinds: Vec<Kind> = params.iter().map(|(_, d)| kind_of(d)).collect();
        let d = kinds.len();
        // Each usable trial: its number, model coordinates and observations.
        let mut rows: Vec<Row> = Vec::new();
        for t in study.trials_in(&[TrialState::Complete, TrialState::Pruned])? {
            if t.number == trial.number {
                continue;
            }
            let mut x = Vec::with_capacity(d);
            for (name, dist) in params {
                match (t.distribution(name), t.internal_param(name)) {
                    (Some(td), Some(v)) if td == *dist => x.push(match dist {
                        Distribution::Categorical(_) => v,
                        _ => dist.to_unit(v),
                    }),
                    _ => break,
                }
            }
            if x.len() == d {
                rows.push((t.number, x, trial_observations(t, sign)));
            }
        }
        let mut counts: BTreeMap<Budget, usize> = BTreeMap::new();
        for (_, _, obs) in &rows {
            for (b, _) in obs {
                *counts.entry(*b).or_default() += 1;
            }
        }
        let n_min = self.n_min(d);
        let Some(budget) = select_budget(&counts, n_min, d, self.config.top_n_percent) else {
            return Ok(None);
        };
        let mut at_budget: Vec<(f64, u64, &[f64])> = rows
            .iter()
            .filter_map(|(number, x, obs)| {
                obs.iter()
                    .find(|(b, _)| *b == budget)
                    .map(|&(_, loss)| (loss, *number, x.as_slice()))
            })
            .collect();
        at_budget.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let (n_good, n_bad) = split_sizes(at_budget.len(), n_min, self.config.top_n_percent);
        let flatten = |group: &[(f64, u64, &[f64])]| -> Vec<f64> {
            group
                .iter()
                .flat_map(|(_, _, x)| x.iter().copied())
                .collect()
        };
        let min_bw = self.config.min_bandwidth;
        let good = Kde::fit(flatten(&at_budget[..n_good]), &kinds, min_bw);
        let bad = Kde::fit(flatten(&at_budget[n_good..n_good + n_bad]), &kinds, min_bw);
        let mut best: Option<(f64, Vec<f64>)> = None;
        let mut candidate = Vec::with_capacity(d);
        let mut terms = Vec::new();
        for _ in 0..self.config.num_samples {
            good.sample(&kinds, self.config.bandwidth_factor, rng, &mut candidate);
            let score = good.log_pdf(&candidate, &kinds, &mut terms)
                - bad.log_pdf(&candidate, &kinds, &mut terms);
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, candidate.clone()));
            }
        }
        Ok(best.map(|(_, x)| {
            params
                .iter()
                .zip(x)
                .map(|((_, dist), v)| match dist {
                    Distribution::Categorical(_) => v,
                    _ => dist.from_unit(v),
                })
                .collect()
        }))
    }
}

impl Sampler for BohbSampler {
    /// Parameters outside the modelled space (conditional or dynamic ones) are drawn uniformly.
    fn sample_independent(
        &self,
        _study: &StudyView<'_>,
        _trial: &FrozenTrial,
        _name: &str,
        distribution: &Distribution,
        rng: &mut TrialRng,
    ) -> Result<f64> {
        Ok(distribution.from_unit(rng.uniform()))
    }

    /// The parameters every Complete or Pruned trial has, with one distribution (single-valued
    /// ones left out). Refuses studies with several objectives.
    fn infer_relative_search_space(
        &self,
        study: &StudyView<'_>,
        _trial: &FrozenTrial,
    ) -> Result<SearchSpace> {
        if study.directions().len() != 1 {
            return Err(Error::invalid_argument(
                "sampler",
                format!(
                    "BOHB optimizes one objective but the study has {}; use TPE (MOTPE) for \
                     several objectives",
                    study.directions().len()
                ),
            ));
        }
        let mut space: Option<SearchSpace> = None;
        for t in study.trials_in(&[TrialState::Complete, TrialState::Pruned])? {
            intersect_with(&mut space, t);
        }
        Ok(space.unwrap_or_default())
    }

    /// With probability `random_fraction`, or while no budget has enough observations,
    /// nothing (every parameter is then drawn uniformly); otherwise the model's proposal.
    fn sample_relative(
        &self,
        study: &StudyView<'_>,
        trial: &FrozenTrial,
        space: &SearchSpace,
        rng: &mut TrialRng,
    ) -> Result<BTreeMap<String, f64>> {
        if space.is_empty() || rng.uniform() < self.config.random_fraction {
            return Ok(BTreeMap::new());
        }
        let params: Vec<(&str, &Distribution)> =
            space.iter().map(|(n, d)| (n.as_str(), d)).collect();
        Ok(match self.propose(study, trial, &params, rng)? {
            Some(values) => params
                .iter()
                .zip(values)
                .map(|((n, _), v)| ((*n).to_owned(), v))
                .collect(),
            None => BTreeMap::new(),
        })
    }
}

#[cfg(test)]
mod tests;
