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

    /// The wrapped pruner's: a patient Hyperband still shows the sampler one bracket.
    fn trial_filter(
        &self,
        study: &StudyView<'_>,
        trial: &FrozenTrial,
    ) -> Result<Option<crate::study::TrialFilter>> {
        match &self.wrapped {
            Some(p) => p.trial_filter(study, trial),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pruner::test_util::{curve_trial as trial, study, study_with};
    use crate::pruner::{NopPruner, ThresholdPruner};

    fn patient(patience: u64, min_delta: f64) -> PatientPruner {
        PatientPruner::new(None, patience, min_delta).expect("valid pruner")
    }

    #[test]
    fn no_pruning_within_patience() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let view = study.view();
        let p = patient(2, 0.0);
        // Getting worse, but only patience + 1 reports so far.
        assert!(!p.prune(&view, &trial(&[1.0, 2.0, 3.0]))?);
        assert!(!p.prune(&view, &trial(&[1.0]))?);
        assert!(!p.prune(&view, &trial(&[]))?);
        // Improving within the last patience + 1 reports.
        assert!(!p.prune(&view, &trial(&[1.0, 2.0, 2.0, 0.9]))?);
        Ok(())
    }

    #[test]
    fn prunes_after_no_improvement_for_longer_than_patience() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let view = study.view();
        let p = patient(2, 0.0);
        // Best before the window is 1.0; the last three reports never get back to it.
        assert!(p.prune(&view, &trial(&[1.0, 2.0, 2.0, 2.0]))?);
        assert!(p.prune(&view, &trial(&[3.0, 1.0, 1.5, 1.2, 1.1]))?);
        // Optuna's rule is strict: merely matching the earlier best within the window is not
        // a plateau worth pruning (min(before) + min_delta < min(after) is false).
        assert!(!p.prune(&view, &trial(&[1.0, 1.0, 1.0, 1.0, 1.0]))?);
        // Patience 0: one worse report after the best is enough.
        assert!(patient(0, 0.0).prune(&view, &trial(&[1.0, 1.5]))?);
        assert!(!patient(0, 0.0).prune(&view, &trial(&[1.0, 0.5]))?);
        Ok(())
    }

    #[test]
    fn min_delta_widens_the_tolerance() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let view = study.view();
        let curve = trial(&[1.0, 1.05, 1.05, 1.05]);
        assert!(patient(2, 0.0).prune(&view, &curve)?);
        assert!(patient(2, 0.01).prune(&view, &curve)?);
        assert!(!patient(2, 0.1).prune(&view, &curve)?);
        Ok(())
    }

    #[test]
    fn maximize_is_mirrored() -> Result<()> {
        let study = study(Direction::Maximize)?;
        let view = study.view();
        let p = patient(2, 0.0);
        assert!(p.prune(&view, &trial(&[5.0, 4.0, 4.0, 4.0]))?);
        assert!(!p.prune(&view, &trial(&[5.0, 4.0, 4.0, 6.0]))?);
        assert!(!patient(2, 1.5).prune(&view, &trial(&[5.0, 4.0, 4.0, 4.0]))?);
        // The same curve minimized is improving.
        let min = self::study(Direction::Minimize)?;
        assert!(!p.prune(&min.view(), &trial(&[5.0, 4.0, 4.0, 4.0]))?);
        Ok(())
    }

    #[test]
    fn nan_reports_are_skipped() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let view = study.view();
        let p = patient(1, 0.0);
        assert!(p.prune(&view, &trial(&[1.0, f64::NAN, 2.0]))?);
        // No number in the window (or before it): no evidence, no pruning.
        assert!(!p.prune(&view, &trial(&[1.0, f64::NAN, f64::NAN]))?);
        assert!(!p.prune(&view, &trial(&[f64::NAN, 2.0, 3.0]))?);
        Ok(())
    }

    #[test]
    fn the_wrapped_pruner_decides_once_patience_runs_out() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let view = study.view();
        let stalled = trial(&[1.0, 2.0, 2.0, 2.0]);
        let nop = PatientPruner::new(Some(Arc::new(NopPruner)), 2, 0.0)?;
        assert!(!nop.prune(&view, &stalled)?);
        let threshold: Arc<dyn Pruner> = Arc::new(ThresholdPruner::new(None, Some(1.5), 0, 1)?);
        let wrapped = PatientPruner::new(Some(threshold.clone()), 2, 0.0)?;
        assert!(wrapped.prune(&view, &stalled)?);
        assert!(
            !wrapped.prune(&view, &trial(&[1.0, 1.2, 1.2, 1.2]))?,
            "inside the band"
        );
        // Not stalled: the wrapped pruner is not consulted even though it would prune.
        assert!(!wrapped.prune(&view, &trial(&[9.0, 8.0, 7.0, 6.0]))?);
        assert!(threshold.prune(&view, &trial(&[9.0, 8.0, 7.0, 6.0]))?);
        Ok(())
    }

    #[test]
    fn constructor_validates_min_delta() {
        for bad in [-0.1, f64::NAN, f64::INFINITY] {
            match PatientPruner::new(None, 1, bad) {
                Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "min_delta"),
                other => panic!("expected InvalidArgument for {bad}, got {other:?}"),
            }
        }
        assert!(PatientPruner::new(None, 0, 0.0).is_ok());
    }

    #[test]
    fn works_with_trials_from_the_study() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = patient(1, 0.0);
        let mut t = study.ask()?;
        for (step, v) in [(0, 0.5), (10, 0.7), (20, 0.8)] {
            t.report(step, v)?;
        }
        assert!(p.prune(&study.view(), t.frozen())?);
        Ok(())
    }

    #[test]
    fn multi_objective_studies_are_unsupported() -> Result<()> {
        let study = study_with(vec![Direction::Minimize, Direction::Minimize])?;
        let t = study.ask()?;
        match patient(1, 0.0).prune(&study.view(), t.frozen()) {
            Err(Error::Unsupported(msg)) => assert!(msg.contains("PatientPruner"), "{msg}"),
            other => panic!("expected Unsupported, got {other:?}"),
        }
        Ok(())
    }
}
