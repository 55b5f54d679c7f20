//! `TpeSampler`: the Tree-structured Parzen Estimator (Bergstra et al., "Algorithms for
//! Hyper-Parameter Optimization", NeurIPS 2011; Watanabe, "Tree-Structured Parzen Estimator:
//! Understanding Its Algorithm Components", 2023), with Optuna 5.0's defaults.
//!
//! Finished trials are split into the best `γ(n) = min(⌈0.1·n⌉, 25)` ("below") and the rest
//! ("above"); a Parzen estimator `l` is fit to the first and `g` to the second, `n_ei_candidates`
//! points are drawn from `l`, and the one maximizing `log l − log g` is proposed.

mod cache;
mod parzen;

use super::{Sampler, SearchSpace};
use crate::error::{Error, Result};
use crate::rng::TrialRng;
use crate::space::Distribution;
use crate::study::{Direction, StudyView};
use crate::trial::{FrozenTrial, TrialState};
use cache::Cache;
use parzen::{Bandwidth, Dim, DimKind, ParzenEstimator};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// TPE's settings; [`Default`] gives Optuna 5.0's.
#[derive(Clone, Debug, PartialEq)]
pub struct TpeConfig {
    /// Trials drawn at random (as by `RandomSampler`) while fewer than this many trials are
    /// Complete (or Pruned, with [`consider_pruned_trials`](Self::consider_pruned_trials)).
    /// Default 10.
    pub n_startup_trials: usize,
    /// Candidates drawn from `l(x)` per proposal. Default 24.
    pub n_ei_candidates: usize,
    /// Model the parameters every finished trial shares jointly (default true); the others,
    /// and all of them when false, are modelled one at a time.
    pub multivariate: bool,
    /// Count Running trials among the "above" (bad) ones, so parallel workers spread out.
    /// Default true.
    pub constant_liar: bool,
    /// Weight of the prior component relative to one observation. Default 1.0.
    pub prior_weight: f64,
    /// Let the range ends bound the widths of the extreme kernels. Default false.
    pub consider_endpoints: bool,
    /// Clip kernel widths to `[(high − low)/min(100, 1 + n_kernels), high − low]`. Default true.
    pub consider_magic_clip: bool,
    /// Split the parameters into groups that always occur together in finished trials and
    /// model each group jointly (Optuna's `group=True`): in a conditional space the
    /// parameters of each branch get a joint model instead of an independent one. Needs
    /// `multivariate`. Default false.
    pub group: bool,
    /// Let Pruned trials into the model, ranked after the Complete ones by (latest step
    /// descending, value at it), as Optuna's TPE does (default true). When false, the model
    /// and the startup count see Complete trials only (like Optuna's CMA-ES sampler's
    /// `consider_pruned_trials`). A trial pruned at an early step says little about its
    /// final value, and with an asynchronous successive-halving pruner three in four of the
    /// sampler's own proposals around its good region are stopped at the first rung and
    /// land in the bad group there. Measured (bench/RESULTS.md, "Pruned trials in TPE's
    /// model"): with successive halving, 16 simulated workers and 300 full-fidelity
    /// equivalents, leaving them out turned runs that never reached random search's final
    /// value (`lc_hartmann6`, LCBench task 3945) into 3.1× speed-ups; but with 100 trials of
    /// 27 steps in one thread (this crate's multi-fidelity tests) the model then sees only
    /// the few complete trials and does clearly worse, so Optuna's rule stays the default.
    pub consider_pruned_trials: bool,
}

impl Default for TpeConfig {
    fn default() -> Self {
        TpeConfig {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            multivariate: true,
            constant_liar: true,
            prior_weight: 1.0,
            consider_endpoints: false,
            consider_magic_clip: true,
            group: false,
            consider_pruned_trials: true,
        }
    }
}

/// The Tree-structured Parzen Estimator sampler, for one objective or several (MOTPE).
#[derive(Debug, Default)]
pub struct TpeSampler {
    config: TpeConfig,
    /// Finished trials' observations and shared search space, kept between asks.
    cache: Mutex<Cache>,
    /// Scratch buffers of finished asks, reused by later ones (one per concurrent ask).
    workspaces: Mutex<Vec<Workspace>>,
}

/// The buffers one proposal needs; reused so that asks over long histories allocate nothing.
#[derive(Debug, Default)]
struct Workspace {
    obs: Vec<f64>,
    /// Per parameter, the observation rows sorted by value.
    orders: Vec<Vec<usize>>,
    below: ParzenEstimator,
    above: ParzenEstimator,
    candidates: Vec<f64>,
    ll: Vec<f64>,
    lg: Vec<f64>,
    scratch: Vec<f64>,
}

/// A workspace lent to one ask, returned to the pool when dropped.
struct LentWorkspace<'a> {
    pool: &'a Mutex<Vec<Workspace>>,
    workspace: Workspace,
}

impl std::ops::Deref for LentWorkspace<'_> {
    type Target = Workspace;
    fn deref(&self) -> &Workspace {
        &self.workspace
    }
}

impl std::ops::DerefMut for LentWorkspace<'_> {
    fn deref_mut(&mut self) -> &mut Workspace {
        &mut self.workspace
    }
}

impl Drop for LentWorkspace<'_> {
    fn drop(&mut self) {
        let workspace = std::mem::take(&mut self.workspace);
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(workspace);
    }
}

impl Clone for TpeSampler {
    /// The same settings with an empty cache.
    fn clone(&self) -> Self {
        TpeSampler {
            config: self.config.clone(),
            cache: Mutex::default(),
            workspaces: Mutex::default(),
        }
    }
}

/// `γ(n) = min(⌈0.1·n⌉, 25)`: how many trials count as good out of `n` finished ones.
pub(crate) fn gamma(n: usize) -> usize {
    n.div_ceil(10).min(25)
}

/// `γ(n) = ⌈0.1·n⌉` for several objectives (Optuna 5.0 dropped the cap of 25 there).
pub(crate) fn gamma_multi_objective(n: usize) -> usize {
    n.div_ceil(10)
}

/// Observation weights in trial-number order: ones for fewer than 25, otherwise a ramp
/// `linspace(1/n, 1, n − 25)` followed by 25 ones, so old trials count less.
pub(crate) fn default_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let m = n - 25;
    let start = 1.0 / n as f64;
    let mut w: Vec<f64> = match m {
        0 => Vec::new(),
        1 => vec![start],
        _ => (0..m)
            .map(|i| start + (1.0 - start) * i as f64 / (m - 1) as f64)
            .collect(),
    };
    w.extend(std::iter::repeat_n(1.0, 25));
    w
}

/// One dimension: its distribution and model scale.
fn model_dim(dist: &Distribution) -> Dim {
    match dist {
        Distribution::Float(d) => match d.step() {
            Some(step) => {
                let n = dist.cardinality().unwrap_or(1) as usize;
                Dim {
                    kind: DimKind::Discrete {
                        origin: d.low(),
                        step,
                        n,
                    },
                    low: d.low() - 0.5 * step,
                    high: d.low() + (n as f64 - 0.5) * step,
                }
            }
            None if d.log() => Dim {
                kind: DimKind::Continuous,
                low: d.low().ln(),
                high: d.high().ln(),
            },
            None => Dim {
                kind: DimKind::Continuous,
                low: d.low(),
                high: d.high(),
            },
        },
        Distribution::Int(d) if d.log() => Dim {
            kind: DimKind::Continuous,
            low: (d.low() as f64 - 0.5).ln(),
            high: (d.high() as f64 + 0.5).ln(),
        },
        Distribution::Int(d) => {
            let step = d.step() as f64;
            Dim {
                kind: DimKind::Discrete {
                    origin: d.low() as f64,
                    step,
                    n: d.cardinality() as usize,
                },
                low: d.low() as f64 - 0.5 * step,
                high: d.high() as f64 + 0.5 * step,
            }
        }
        Distribution::Categorical(c) => Dim {
            kind: DimKind::Categorical {
                n: c.choices().len(),
            },
            low: 0.0,
            high: c.choices().len() as f64 - 1.0,
        },
    }
}

/// An internal value on the model scale.
fn to_model(dist: &Distribution, internal: f64) -> f64 {
    match dist {
        Distribution::Float(d) if d.log() => internal.ln(),
        Distribution::Int(d) if d.log() => internal.ln(),
        _ => internal,
    }
}

/// A model-scale value back to an internal value inside `dist`.
fn from_model(dist: &Distribution, dim: &Dim, x: f64) -> f64 {
    match dist {
        Distribution::Float(d) => match d.step() {
            Some(_) => dim.snap(x).min(d.high()),
            None if d.log() => x.exp().clamp(d.low(), d.high()),
            None => x.clamp(d.low(), d.high()),
        },
        Distribution::Int(d) if d.log() => x.exp().round().clamp(d.low() as f64, d.high() as f64),
        Distribution::Int(d) => dim.snap(x).clamp(d.low() as f64, d.high() as f64),
        Distribution::Categorical(_) => dim.snap(x),
    }
}

/// Splits trials (sorted by number) into the best `n_below` and the rest, Optuna's way:
/// feasible Complete trials by value (several objectives: see
/// [`select_multi_objective`]), then Pruned ones by (latest step descending, value at
/// it), then infeasible ones by total violation; Running trials (the constant liar) are
/// always "above". Both halves come back in trial-number order.
fn split<'t>(
    trials: &[&'t FrozenTrial],
    mut n_below: usize,
    directions: &[Direction],
) -> (Vec<&'t FrozenTrial>, Vec<&'t FrozenTrial>) {
    let single = directions.len() == 1;
    let sign = directions.first().map_or(1.0, |d| d.to_loss(1.0));
    let mut complete = Vec::new();
    let mut pruned = Vec::new();
    let mut infeasible = Vec::new();
    for &t in trials {
        match t.state {
            TrialState::Running => {}
            TrialState::Complete | TrialState::Pruned if !t.is_feasible() => infeasible.push(t),
            TrialState::Complete => complete.push(t),
            TrialState::Pruned => pruned.push(t),
            _ => {}
        }
    }
    let value = |t: &FrozenTrial| t.value().unwrap_or(f64::INFINITY) * sign;
    // Only the best `n_below` need ordering (ties by trial number, as a stable sort of the
    // number-ordered trials would give): select them in O(n), then sort just those.
    let by_value = |a: &&FrozenTrial, b: &&FrozenTrial| {
        value(a).total_cmp(&value(b)).then(a.number.cmp(&b.number))
    };
    if !single {
        select_multi_objective(&mut complete, n_below, directions);
    } else if n_below < complete.len() {
        if n_below > 0 {
            complete.select_nth_unstable_by(n_below - 1, by_value);
        }
        complete[..n_below].sort_unstable_by(by_value);
    } else {
        complete.sort_unstable_by(by_value);
    }
    let pruned_key = |t: &FrozenTrial| match t.last_step() {
        Some(step) => (
            -(step as i128),
            if single {
                t.intermediate(step).unwrap_or(f64::NAN) * sign
            } else {
                0.0
            },
        ),
        None => (1, 0.0),
    };
    pruned.sort_by(|a, b| {
        let (ka, kb) = (pruned_key(a), pruned_key(b));
        ka.0.cmp(&kb.0).then_with(|| nan_last(ka.1, kb.1))
    });
    infeasible.sort_by(|a, b| {
        a.constraint_violation()
            .total_cmp(&b.constraint_violation())
    });
    let mut below = Vec::new();
    for group in [complete, pruned, infeasible] {
        let k = n_below.min(group.len());
        below.extend_from_slice(&group[..k]);
        n_below -= k;
    }
    below.sort_unstable_by_key(|t| t.number);
    // `trials` is in number order, so the rest comes out in number order too.
    let above = trials
        .iter()
        .copied()
        .filter(|t| {
            matches!(
                t.state,
                TrialState::Running | TrialState::Complete | TrialState::Pruned
            ) && below.binary_search_by_key(&t.number, |b| b.number).is_err()
        })
        .collect();
    (below, above)
}

/// Moves the `n_below` best of `complete` (several objectives) to its front, as MOTPE does
/// in Optuna 5.0 (Ozaki et al., "Multiobjective tree-structured Parzen estimator", JAIR 73,
/// 2022): whole non-domination ranks while they fit, then, within the rank that does not,
/// the subset greedily maximizing hypervolume with the reference point
/// `max(1.1·worst, 0.9·worst)` of that rank (zero coordinates replaced by 1e-12). Losses
/// that are not finite make the hypervolume meaningless: that rank is then cut in trial
/// order.
fn select_multi_objective(complete: &mut [&FrozenTrial], n_below: usize, directions: &[Direction]) {
    if n_below >= complete.len() {
        return;
    }
    let losses: Vec<Vec<f64>> = complete
        .iter()
        .map(|t| {
            directions
                .iter()
                .enumerate()
                .map(|(k, d)| {
                    let v = t.values.as_ref().and_then(|v| v.get(k)).copied();
                    let loss = d.to_loss(v.unwrap_or(f64::NAN));
                    if loss.is_nan() {
                        f64::INFINITY
                    } else {
                        loss
                    }
                })
                .collect()
        })
        .collect();
    let points: Vec<&[f64]> = losses.iter().map(Vec::as_slice).collect();
    let ranks = crate::pareto::non_domination_ranks(&points, n_below);
    let mut chosen: Vec<usize> = Vec::with_capacity(n_below);
    for rank in 0.. {
        let members: Vec<usize> = (0..complete.len()).filter(|&i| ranks[i] == rank).collect();
        if members.is_empty() {
            break;
        }
        let need = n_below - chosen.len();
        if members.len() <= need {
            chosen.extend(&members);
        } else {
            let member_points: Vec<&[f64]> = members.iter().map(|&i| points[i]).collect();
            let reference: Vec<f64> = (0..directions.len())
                .map(|k| {
                    let worst = member_points
                        .iter()
                        .map(|p| p[k])
                        .fold(f64::NEG_INFINITY, f64::max);
                    let r = (1.1 * worst).max(0.9 * worst);
                    if r == 0.0 {
                        1e-12
                    } else {
                        r
                    }
                })
                .collect();
            if reference.iter().all(|r| r.is_finite())
                && member_points
                    .iter()
                    .all(|p| p.iter().all(|x| x.is_finite()))
            {
                let picked =
                    crate::pareto::greedy_hypervolume_subset(&member_points, need, &reference);
                chosen.extend(picked.into_iter().map(|j| members[j]));
            } else {
                chosen.extend(&members[..need]);
            }
        }
        if chosen.len() >= n_below {
            break;
        }
    }
    let mut is_chosen = vec![false; complete.len()];
    for &i in &chosen {
        is_chosen[i] = true;
    }
    let mut order: Vec<usize> = (0..complete.len()).collect();
    order.sort_by_key(|&i| !is_chosen[i]);
    let reordered: Vec<&FrozenTrial> = order.iter().map(|&i| complete[i]).collect();
    complete.copy_from_slice(&reordered);
}

/// Orders floats with NaN after everything else.
fn nan_last(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => a.total_cmp(&b),
        (a, b) => a.cmp(&b),
    }
}

impl TpeSampler {
    /// A TPE sampler; checks the settings.
    pub fn new(config: TpeConfig) -> Result<Self> {
        if config.n_ei_candidates == 0 {
            return Err(Error::invalid_argument(
                "n_ei_candidates",
                "needs at least one candidate",
            ));
        }
        if config.group && !config.multivariate {
            return Err(Error::invalid_argument(
                "group",
                "grouping models parameters jointly, so it needs multivariate = true",
            ));
        }
        if !(config.prior_weight.is_finite() && config.prior_weight > 0.0) {
            return Err(Error::invalid_argument(
                "prior_weight",
                format!("must be positive and finite, got {}", config.prior_weight),
            ));
        }
        Ok(TpeSampler {
            config,
            cache: Mutex::default(),
            workspaces: Mutex::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &TpeConfig {
        &self.config
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // The cache holds only derived values, checked against the trials on every use, so
        // one left by a panicking thread is still sound.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn workspace(&self) -> LentWorkspace<'_> {
        let workspace = self
            .workspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        LentWorkspace {
            pool: &self.workspaces,
            workspace,
        }
    }

    /// The parameter groups of the finished trials (see [`TpeConfig::group`]).
    fn groups(&self, study: &StudyView<'_>) -> Result<Vec<SearchSpace>> {
        let finished = study.trials_in(&[TrialState::Complete, TrialState::Pruned])?;
        Ok(if study.is_filtered() {
            Cache::default().groups(study.study_id(), finished)
        } else {
            self.cache().groups(study.study_id(), finished)
        })
    }

    fn n_finished(study: &StudyView<'_>) -> Result<usize> {
        Ok(study
            .trials_in(&[TrialState::Complete, TrialState::Pruned])?
            .count())
    }

    /// Proposes internal values for `params` jointly; `None` during the startup phase.
    fn propose(
        &self,
        study: &StudyView<'_>,
        trial: &FrozenTrial,
        params: &[(&str, &Distribution)],
        rng: &mut TrialRng,
    ) -> Result<Option<Vec<f64>>> {
        let directions = study.directions();
        let mut states = vec![TrialState::Complete];
        if self.config.consider_pruned_trials {
            states.push(TrialState::Pruned);
        }
        if self.config.constant_liar {
            states.push(TrialState::Running);
        }
        let trials: Vec<&FrozenTrial> = study
            .trials_in(&states)?
            .filter(|t| t.number != trial.number)
            .collect();
        let n = trials
            .iter()
            .filter(|t| t.state != TrialState::Running)
            .count();
        if n < self.config.n_startup_trials {
            return Ok(None);
        }
        let n_below = if directions.len() == 1 {
            gamma(n)
        } else {
            gamma_multi_objective(n)
        };
        let (below, above) = split(&trials, n_below, directions);
        let dims: Vec<Dim> = params.iter().map(|(_, d)| model_dim(d)).collect();
        let bandwidth = Bandwidth {
            consider_endpoints: self.config.consider_endpoints,
            magic_clip: self.config.consider_magic_clip,
        };
        let mut ws = self.workspace();
        let Workspace {
            obs,
            orders,
            below: l,
            above: g,
            candidates,
            ll,
            lg,
            scratch,
        } = &mut *ws;
        for (is_below, group, estimator) in [(true, &below, &mut *l), (false, &above, &mut *g)] {
            obs.clear();
            let count = self
                .cache()
                .observations(study.study_id(), group, params, obs, orders);
            // Optuna 5.0 weighs MOTPE's good trials uniformly (v4 used their hypervolume
            // contributions).
            let weights = if is_below && directions.len() > 1 {
                vec![1.0; count]
            } else {
                default_weights(count)
            };
            estimator.fit(
                &dims,
                obs,
                Some(orders),
                &weights,
                self.config.prior_weight,
                bandwidth,
            );
        }
        l.sample(rng, self.config.n_ei_candidates, candidates);
        l.log_pdf(candidates, ll, scratch);
        g.log_pdf(candidates, lg, scratch);
        let mut best = 0;
        let mut best_score = f64::NEG_INFINITY;
        for (i, (a, b)) in ll.iter().zip(lg.iter()).enumerate() {
            let score = a - b;
            if score > best_score {
                best_score = score;
                best = i;
            }
        }
        let x = &candidates[best * dims.len()..(best + 1) * dims.len()];
        let proposal = params
            .iter()
            .zip(&dims)
            .zip(x)
            .map(|(((_, dist), dim), &v)| from_model(dist, dim, v))
            .collect();
        drop(ws);
        Ok(Some(proposal))
    }
}

impl Sampler for TpeSampler {
    fn sample_independent(
        &self,
        study: &StudyView<'_>,
        trial: &FrozenTrial,
        name: &str,
        distribution: &Distribution,
        rng: &mut TrialRng,
    ) -> Result<f64> {
        match self.propose(study, trial, &[(name, distribution)], rng)? {
            Some(v) => Ok(v[0]),
            None => Ok(distribution.from_unit(rng.uniform())),
        }
    }

    fn infer_relative_search_space(
        &self,
        study: &StudyView<'_>,
        _trial: &FrozenTrial,
    ) -> Result<SearchSpace> {
        if !self.config.multivariate || Self::n_finished(study)? < self.config.n_startup_trials {
            return Ok(SearchSpace::new());
        }
        if self.config.group {
            return Ok(self.groups(study)?.into_iter().flatten().collect());
        }
        let finished = study.trials_in(&[TrialState::Complete, TrialState::Pruned])?;
        if study.is_filtered() {
            return Ok(Cache::default().intersection(study.study_id(), finished));
        }
        Ok(self.cache().intersection(study.study_id(), finished))
    }

    fn sample_relative(
        &self,
        study: &StudyView<'_>,
        trial: &FrozenTrial,
        space: &SearchSpace,
        rng: &mut TrialRng,
    ) -> Result<BTreeMap<String, f64>> {
        if space.is_empty() {
            return Ok(BTreeMap::new());
        }
        let subspaces = if self.config.group {
            self.groups(study)?
        } else {
            vec![space.clone()]
        };
        let mut proposal = BTreeMap::new();
        for subspace in &subspaces {
            let params: Vec<(&str, &Distribution)> = subspace
                .iter()
                .filter(|(n, d)| space.get(*n) == Some(*d))
                .map(|(n, d)| (n.as_str(), d))
                .collect();
            if params.is_empty() {
                continue;
            }
            if let Some(values) = self.propose(study, trial, &params, rng)? {
                proposal.extend(
                    params
                        .iter()
                        .zip(values)
                        .map(|((n, _), v)| ((*n).to_owned(), v)),
                );
            }
        }
        Ok(proposal)
    }
}

#[cfg(test)]
mod tests;
