//! `PatientPruner`: tolerate a plateau for a number of steps before letting another pruner
//! decide.

use super::{require_single_objective, Pruner};
use crate::error::{Error, Result};
use crate::study::{Direction, StudyView};
use crate::trial::FrozenTrial;
use std::sync::Arc;

/// Waits until a trial has not improved by more than `min_delta` for `patience` consecutive
/// steps, then defers to the wrapped pruner (or prunes, with none). Optuna 5.0's
/// `PatientPruner` rule: compare the best value before the last `patience + 1` reports with
/// the best value among them.
#[derive(Debug, Clone)]
pub struct PatientPruner {
    wrapped: Option<Arc<dyn Pruner>>,
    patience: u64,
    min_delta: f64,
}

impl PatientPruner {
    /// `min_delta` must be finite and ≥ 0.
    pub fn new(wrapped: Option<Arc<dyn Pruner>>, patience: u64, min_delta: f64) -> Result<Self> {
        if !(min_delta.is_finite() && min_delta >= 0.0) {
            return Err(Error::invalid_argument(
                "min_delta",
                format!("must be finite and >= 0, got {min_delta}"),
            ));
        }
        Ok(PatientPruner {
            wrapped,
            patience,
            min_delta,
        })
    }
}

fn best(values: &[f64], direction: Direction) -> Option<f64> {
    values
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .reduce(|a, b| match direction {
            Direction::Minimize => a.min(b),
            Direction::Maximize => a.max(b),
        })
}

impl Pruner for PatientPruner {
    fn prune(&self, study: &StudyView<'_>, trial: &FrozenTrial) -> Result<bool> {
        require_single_objective(study, "PatientPruner")?;
        let values: Vec<f64> = trial
            .intermediate_values
            .values()
            .filter_map(|v| v.first().copied())
            .collect();
        let window = self.patience as usize + 1;
        if values.len() <= window {
            return Ok(false);
        }
        let (before, after) = values.split_at(values.len() - window);
        let direction = study.directions()[0];
        let stalled = match (best(before, direction), best(after, direction)) {
            (Some(b), Some(a)) => match direction {
                Direction::Minimize => b + self.min_delta < a,
                Direction::Maximize => b - self.min_delta > a,
            },
            _ => false,
        };
        if !stalled {
            return Ok(false);
        }
        match &self.wrapped {
            Some(p) => p.prune(study, trial),
            None => Ok(true),
        }
    }
}
