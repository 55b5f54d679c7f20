//! `PercentilePruner` and `MedianPruner`: stop a trial whose best intermediate value is worse
//! than a percentile of the completed trials' values at the same step.

use super::{is_first_in_interval, require_single_objective, Pruner};
use crate::error::{Error, Result};
use crate::study::{Direction, StudyView};
use crate::trial::{FrozenTrial, TrialState};

/// Prunes a trial whose best intermediate value so far is worse than the `percentile`-th
/// percentile of the Complete trials' intermediate values at the trial's current step.
///
/// Semantics and defaults follow Optuna 5.0 (`optuna/pruners/_percentile.py`): nothing is
/// pruned before `n_startup_trials` trials have completed, before step `n_warmup_steps`,
/// except at the first report of each `interval_steps`-long interval, or when fewer than
/// `n_min_trials` completed trials reported this step. A trial whose values are all NaN is
/// pruned. For maximization the percentile is mirrored (`100 − p`).
#[derive(Debug, Clone, PartialEq)]
pub struct PercentilePruner {
    percentile: f64,
    n_startup_trials: u64,
    n_warmup_steps: u64,
    interval_steps: u64,
    n_min_trials: u64,
}

/// The median rule: [`PercentilePruner`] at the 50th percentile.
pub type MedianPruner = PercentilePruner;

impl PercentilePruner {
    /// A percentile pruner; `percentile ∈ [0, 100]`, `interval_steps ≥ 1`, `n_min_trials ≥ 1`.
    pub fn new(
        percentile: f64,
        n_startup_trials: u64,
        n_warmup_steps: u64,
        interval_steps: u64,
        n_min_trials: u64,
    ) -> Result<Self> {
        if !(0.0..=100.0).contains(&percentile) {
            return Err(Error::invalid_argument(
                "percentile",
                format!("must be in [0, 100], got {percentile}"),
            ));
        }
        if interval_steps == 0 {
            return Err(Error::invalid_argument(
                "interval_steps",
                "must be >= 1, got 0",
            ));
        }
        if n_min_trials == 0 {
            return Err(Error::invalid_argument("n_min_trials", "must be >= 1, got 0"));
        }
        Ok(PercentilePruner {
            percentile,
            n_startup_trials,
            n_warmup_steps,
            interval_steps,
            n_min_trials,
        })
    }

    /// The median pruner with Optuna's defaults: 5 startup trials, no warm-up, every step,
    /// at least one completed trial at the step.
    pub fn median() -> Self {
        PercentilePruner {
            percentile: 50.0,
            n_startup_trials: 5,
            n_warmup_steps: 0,
            interval_steps: 1,
            n_min_trials: 1,
        }
    }
}

/// The `q`-th percentile (0–100) of `values` with linear interpolation between order
/// statistics (numpy's default), or `None` for an empty slice.
pub(crate) fn percentile_of(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let pos = (values.len() - 1) as f64 * q / 100.0;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let frac = pos - lo as f64;
    Some(values[lo] + (values[hi] - values[lo]) * frac)
}

impl Pruner for PercentilePruner {
    fn prune(&self, study: &StudyView<'_>, trial: &FrozenTrial) -> Result<bool> {
        require_single_objective(study, "PercentilePruner")?;
        let Some(step) = trial.last_step() else {
            return Ok(false);
        };
        if step < self.n_warmup_steps
            || !is_first_in_interval(trial, step, self.n_warmup_steps, self.interval_steps)
        {
            return Ok(false);
        }
        let complete: Vec<&FrozenTrial> = study.trials_in(&[TrialState::Complete])?.collect();
        if complete.is_empty() || (complete.len() as u64) < self.n_startup_trials {
            return Ok(false);
        }
        let direction = study.directions()[0];
        let own = trial
            .intermediate_values
            .values()
            .filter_map(|v| v.first().copied())
            .filter(|v| !v.is_nan());
        let best = match direction {
            Direction::Minimize => own.fold(None, |b: Option<f64>, v| Some(b.map_or(v, |b| b.min(v)))),
            Direction::Maximize => own.fold(None, |b: Option<f64>, v| Some(b.map_or(v, |b| b.max(v)))),
        };
        let Some(best) = best else {
            return Ok(true);
        };
        let mut others: Vec<f64> = complete
            .iter()
            .filter_map(|t| t.intermediate(step))
            .filter(|v| !v.is_nan())
            .collect();
        if (others.len() as u64) < self.n_min_trials {
            return Ok(false);
        }
        let q = match direction {
            Direction::Minimize => self.percentile,
            Direction::Maximize => 100.0 - self.percentile,
        };
        let Some(reference) = percentile_of(&mut others, q) else {
            return Ok(false);
        };
        Ok(direction.better(reference, best))
    }
}
