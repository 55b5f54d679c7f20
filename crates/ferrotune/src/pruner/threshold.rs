//! `ThresholdPruner`: stop a trial whose latest value leaves a fixed band.

use super::{is_first_in_interval, require_single_objective, Pruner};
use crate::error::{Error, Result};
use crate::study::StudyView;
use crate::trial::FrozenTrial;

/// Prunes a trial whose latest intermediate value is NaN, below `lower` or above `upper`
/// (Optuna 5.0's `ThresholdPruner`, with the same warm-up and interval rules as the
/// percentile pruner). Useful to stop diverging runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdPruner {
    lower: Option<f64>,
    upper: Option<f64>,
    n_warmup_steps: u64,
    interval_steps: u64,
}

impl ThresholdPruner {
    /// At least one bound is required, and `lower <= upper` when both are given.
    pub fn new(
        lower: Option<f64>,
        upper: Option<f64>,
        n_warmup_steps: u64,
        interval_steps: u64,
    ) -> Result<Self> {
        match (lower, upper) {
            (None, None) => {
                return Err(Error::invalid_argument(
                    "lower/upper",
                    "give at least one of lower and upper",
                ))
            }
            (Some(l), Some(u)) if l > u => {
                return Err(Error::invalid_argument(
                    "lower/upper",
                    format!("lower={l} is greater than upper={u}"),
                ))
            }
            _ => {}
        }
        if lower.is_some_and(f64::is_nan) || upper.is_some_and(f64::is_nan) {
            return Err(Error::invalid_argument("lower/upper", "bounds must not be NaN"));
        }
        if interval_steps == 0 {
            return Err(Error::invalid_argument("interval_steps", "must be >= 1, got 0"));
        }
        Ok(ThresholdPruner {
            lower,
            upper,
            n_warmup_steps,
            interval_steps,
        })
    }
}

impl Pruner for ThresholdPruner {
    fn prune(&self, study: &StudyView<'_>, trial: &FrozenTrial) -> Result<bool> {
        require_single_objective(study, "ThresholdPruner")?;
        let Some(step) = trial.last_step() else {
            return Ok(false);
        };
        if step < self.n_warmup_steps
            || !is_first_in_interval(trial, step, self.n_warmup_steps, self.interval_steps)
        {
            return Ok(false);
        }
        let Some(latest) = trial.intermediate(step) else {
            return Ok(false);
        };
        Ok(latest.is_nan()
            || self.lower.is_some_and(|l| latest < l)
            || self.upper.is_some_and(|u| latest > u))
    }
}
