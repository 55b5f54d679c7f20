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
            return Err(Error::invalid_argument(
                "lower/upper",
                "bounds must not be NaN",
            ));
        }
        if interval_steps == 0 {
            return Err(Error::invalid_argument(
                "interval_steps",
                "must be >= 1, got 0",
            ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pruner::test_util::{self, curve_trial as trial};
    use crate::pruner::PrunerSpec;
    use crate::study::{Direction, Study};

    fn study() -> Result<Study> {
        test_util::study(Direction::Minimize)
    }

    fn band(lower: Option<f64>, upper: Option<f64>) -> ThresholdPruner {
        ThresholdPruner::new(lower, upper, 0, 1).expect("valid pruner")
    }

    #[test]
    fn prunes_outside_the_band() -> Result<()> {
        let study = study()?;
        let view = study.view();
        let p = band(Some(0.0), Some(1.0));
        assert!(p.prune(&view, &trial(&[-0.1]))?);
        assert!(!p.prune(&view, &trial(&[0.5]))?);
        assert!(p.prune(&view, &trial(&[1.1]))?);
        // The bounds themselves are inside.
        assert!(!p.prune(&view, &trial(&[0.0]))?);
        assert!(!p.prune(&view, &trial(&[1.0]))?);
        // Only the latest value matters.
        assert!(!p.prune(&view, &trial(&[50.0, 0.5]))?);
        assert!(p.prune(&view, &trial(&[0.5, 50.0]))?);
        // ±inf are outside.
        assert!(p.prune(&view, &trial(&[f64::INFINITY]))?);
        assert!(p.prune(&view, &trial(&[f64::NEG_INFINITY]))?);
        // No report, no decision.
        assert!(!p.prune(&view, &trial(&[]))?);
        Ok(())
    }

    #[test]
    fn one_sided_bands() -> Result<()> {
        let study = study()?;
        let view = study.view();
        let upper = band(None, Some(1.0));
        assert!(!upper.prune(&view, &trial(&[-1e300]))?);
        assert!(upper.prune(&view, &trial(&[1.5]))?);
        let lower = band(Some(0.0), None);
        assert!(!lower.prune(&view, &trial(&[1e300]))?);
        assert!(lower.prune(&view, &trial(&[-0.5]))?);
        Ok(())
    }

    #[test]
    fn nan_is_pruned() -> Result<()> {
        let study = study()?;
        let view = study.view();
        assert!(band(None, Some(1.0)).prune(&view, &trial(&[0.5, f64::NAN]))?);
        assert!(band(Some(0.0), None).prune(&view, &trial(&[f64::NAN]))?);
        // An earlier NaN followed by a valid value is not.
        assert!(!band(Some(0.0), None).prune(&view, &trial(&[f64::NAN, 0.5]))?);
        Ok(())
    }

    #[test]
    fn warmup_and_interval() -> Result<()> {
        let study = study()?;
        let view = study.view();
        let p = ThresholdPruner::new(None, Some(1.0), 2, 2)?;
        let bad = [5.0; 7];
        let checked: Vec<usize> = (1..=7)
            .filter(|&n| p.prune(&view, &trial(&bad[..n])).expect("prune"))
            .map(|n| n - 1)
            .collect();
        // Steps 0 and 1 are warm-up; then pruning steps 2, 4, 6.
        assert_eq!(checked, vec![2, 4, 6]);
        Ok(())
    }

    #[test]
    fn constructor_validates() {
        let reason = |r: Result<ThresholdPruner>| match r {
            Err(Error::InvalidArgument { name, reason }) => format!("{name}: {reason}"),
            other => panic!("expected InvalidArgument, got {other:?}"),
        };
        assert!(reason(ThresholdPruner::new(None, None, 0, 1)).contains("at least one"));
        let msg = reason(ThresholdPruner::new(Some(2.0), Some(1.0), 0, 1));
        assert!(msg.contains("lower=2") && msg.contains("upper=1"), "{msg}");
        assert!(reason(ThresholdPruner::new(Some(f64::NAN), None, 0, 1)).contains("NaN"));
        assert!(reason(ThresholdPruner::new(None, Some(f64::NAN), 0, 1)).contains("NaN"));
        assert!(reason(ThresholdPruner::new(Some(f64::NAN), Some(1.0), 0, 1)).contains("NaN"));
        assert!(reason(ThresholdPruner::new(Some(0.0), None, 0, 0)).starts_with("interval_steps"));
        assert!(ThresholdPruner::new(Some(1.0), Some(1.0), 0, 1).is_ok());
    }

    #[test]
    fn multi_objective_studies_are_unsupported() -> Result<()> {
        let study = Study::builder()
            .directions(vec![Direction::Minimize, Direction::Maximize])
            .pruner(PrunerSpec::Nop)
            .seed(1)
            .build()?;
        let mut t = study.ask()?;
        t.report_values(0, &[1.0, 2.0])?;
        match band(None, Some(0.0)).prune(&study.view(), t.frozen()) {
            Err(Error::Unsupported(msg)) => assert!(msg.contains("ThresholdPruner"), "{msg}"),
            other => panic!("expected Unsupported, got {other:?}"),
        }
        Ok(())
    }
}
