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
            return Err(Error::invalid_argument(
                "n_min_trials",
                "must be >= 1, got 0",
            ));
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
            Direction::Minimize => {
                own.fold(None, |b: Option<f64>, v| Some(b.map_or(v, |b| b.min(v))))
            }
            Direction::Maximize => {
                own.fold(None, |b: Option<f64>, v| Some(b.map_or(v, |b| b.max(v))))
            }
        };
        let Some(best) = best else {
            return Ok(true);
        };
        let mut others: Vec<f64> = complete
            .iter()
            .filter_map(|t| t.intermediate(step))
            .collect();
        // Optuna counts NaN reports towards n_min_trials, then ignores them (nanpercentile).
        if (others.len() as u64) < self.n_min_trials {
            return Ok(false);
        }
        others.retain(|v| !v.is_nan());
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

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use crate::pruner::test_util::{running, study, study_with};
    use crate::study::Study;
    use crate::trial::TrialId;

    /// Runs a trial reporting `curve[i]` at step `i`, then completes it with its last value.
    fn complete(study: &Study, curve: &[f64]) -> Result<()> {
        let t = running(study, curve)?;
        study.tell(t, curve.last().copied().unwrap_or(0.0))?;
        Ok(())
    }

    fn prunes(p: &PercentilePruner, study: &Study, curve: &[f64]) -> Result<bool> {
        let t = running(study, curve)?;
        p.prune(&study.view(), t.frozen())
    }

    fn pruner(
        percentile: f64,
        startup: u64,
        warmup: u64,
        interval: u64,
        min_trials: u64,
    ) -> PercentilePruner {
        PercentilePruner::new(percentile, startup, warmup, interval, min_trials)
            .expect("valid pruner")
    }

    #[test]
    fn percentile_of_interpolates_like_numpy() {
        let p = |values: &[f64], q: f64| percentile_of(&mut values.to_vec(), q);
        assert_eq!(p(&[1.0, 2.0, 3.0, 4.0], 50.0), Some(2.5));
        assert_eq!(p(&[1.0, 2.0, 3.0, 4.0], 25.0), Some(1.75));
        assert_eq!(p(&[1.0, 2.0, 3.0, 4.0], 75.0), Some(3.25));
        assert_eq!(p(&[1.0, 2.0, 3.0, 4.0], 0.0), Some(1.0));
        assert_eq!(p(&[1.0, 2.0, 3.0, 4.0], 100.0), Some(4.0));
        assert_eq!(
            p(&[4.0, 1.0, 3.0, 2.0], 50.0),
            Some(2.5),
            "input order is irrelevant"
        );
        assert_eq!(p(&[1.0, 2.0, 3.0], 50.0), Some(2.0));
        assert_eq!(p(&[10.0, 20.0], 10.0), Some(11.0));
        assert_eq!(p(&[7.0], 33.0), Some(7.0));
        assert_eq!(p(&[-1.0, f64::INFINITY], 0.0), Some(-1.0));
        assert_eq!(p(&[], 50.0), None);
    }

    #[test]
    fn constructor_validates() {
        let name = |r: Result<PercentilePruner>| match r {
            Err(Error::InvalidArgument { name, .. }) => name,
            other => panic!("expected InvalidArgument, got {other:?}"),
        };
        assert_eq!(name(PercentilePruner::new(100.5, 5, 0, 1, 1)), "percentile");
        assert_eq!(name(PercentilePruner::new(-1.0, 5, 0, 1, 1)), "percentile");
        assert_eq!(
            name(PercentilePruner::new(f64::NAN, 5, 0, 1, 1)),
            "percentile"
        );
        assert_eq!(
            name(PercentilePruner::new(50.0, 5, 0, 0, 1)),
            "interval_steps"
        );
        assert_eq!(
            name(PercentilePruner::new(50.0, 5, 0, 1, 0)),
            "n_min_trials"
        );
        assert!(PercentilePruner::new(0.0, 0, 0, 1, 1).is_ok());
        assert!(PercentilePruner::new(100.0, 0, 0, 1, 1).is_ok());
        assert_eq!(PercentilePruner::median(), pruner(50.0, 5, 0, 1, 1));
    }

    #[test]
    fn median_prunes_a_worse_trial_and_keeps_a_better_one() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = pruner(50.0, 0, 0, 1, 1);
        for curve in [[1.0, 0.5], [2.0, 1.5], [3.0, 2.5]] {
            complete(&study, &curve)?;
        }
        // Step 1: completed values 0.5, 1.5, 2.5, median 1.5.
        assert!(prunes(&p, &study, &[5.0, 4.0])?);
        assert!(!prunes(&p, &study, &[1.0, 1.0])?);
        // Exactly at the median is not worse.
        assert!(!prunes(&p, &study, &[2.0, 1.5])?);
        // Step 0: median 2.0.
        assert!(prunes(&p, &study, &[2.1])?);
        assert!(!prunes(&p, &study, &[1.9])?);
        Ok(())
    }

    #[test]
    fn the_trials_best_value_over_all_steps_is_compared() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = pruner(50.0, 0, 0, 1, 1);
        for curve in [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]] {
            complete(&study, &curve)?;
        }
        // Latest value 10 is worse than the median 2 at step 1, but the best so far (0.1) is not.
        assert!(!prunes(&p, &study, &[0.1, 10.0])?);
        Ok(())
    }

    #[test]
    fn nothing_is_pruned_before_n_startup_trials_complete() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = pruner(50.0, 3, 0, 1, 1);
        assert!(!prunes(&p, &study, &[100.0])?, "no completed trial at all");
        complete(&study, &[1.0])?;
        complete(&study, &[1.0])?;
        assert!(!prunes(&p, &study, &[100.0])?, "2 of 3 startup trials");
        // Pruned, failed and running trials do not count as completed.
        let mut t = study.ask()?;
        t.report(0, 1.0)?;
        study.tell_pruned(t)?;
        let t = study.ask()?;
        study.tell_failed(t, "boom")?;
        assert!(!prunes(&p, &study, &[100.0])?, "still 2 completed trials");
        complete(&study, &[1.0])?;
        assert!(prunes(&p, &study, &[100.0])?, "3 completed trials");
        Ok(())
    }

    #[test]
    fn the_default_median_waits_for_five_trials() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = PercentilePruner::median();
        for _ in 0..4 {
            complete(&study, &[1.0])?;
        }
        assert!(!prunes(&p, &study, &[100.0])?);
        complete(&study, &[1.0])?;
        assert!(prunes(&p, &study, &[100.0])?);
        Ok(())
    }

    #[test]
    fn nothing_is_pruned_during_warmup() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = pruner(50.0, 0, 3, 1, 1);
        complete(&study, &[1.0; 6])?;
        let bad = [100.0; 6];
        for steps in 1..=3 {
            assert!(
                !prunes(&p, &study, &bad[..steps])?,
                "last step {}",
                steps - 1
            );
        }
        assert!(
            prunes(&p, &study, &bad[..4])?,
            "step 3 is the first after warm-up"
        );
        assert!(prunes(&p, &study, &bad[..5])?);
        Ok(())
    }

    #[test]
    fn only_the_first_report_in_each_interval_is_checked() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = pruner(50.0, 0, 0, 3, 1);
        complete(&study, &[1.0; 8])?;
        let bad = [100.0; 8];
        let checked: Vec<usize> = (1..=7)
            .filter(|&n| prunes(&p, &study, &bad[..n]).expect("prune"))
            .map(|n| n - 1)
            .collect();
        assert_eq!(checked, vec![0, 3, 6]);
        Ok(())
    }

    #[test]
    fn n_min_trials_must_have_reported_the_step() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = pruner(50.0, 0, 0, 1, 2);
        complete(&study, &[1.0, 1.0, 1.0])?;
        complete(&study, &[1.0, 1.0])?;
        complete(&study, &[1.0])?;
        // Step 0: three trials reported it; step 1: two; step 2: one.
        assert!(prunes(&p, &study, &[100.0])?);
        assert!(prunes(&p, &study, &[100.0, 100.0])?);
        assert!(!prunes(&p, &study, &[100.0, 100.0, 100.0])?);
        // With no completed trial at the step at all, even n_min_trials = 1 does not prune.
        let p1 = pruner(50.0, 0, 0, 1, 1);
        assert!(!prunes(&p1, &study, &[100.0, 100.0, 100.0, 100.0])?);
        Ok(())
    }

    #[test]
    fn percentile_25_is_stricter_than_75() -> Result<()> {
        let study = study(Direction::Minimize)?;
        for v in [1.0, 2.0, 3.0, 4.0] {
            complete(&study, &[v])?;
        }
        let p25 = pruner(25.0, 0, 0, 1, 1); // reference 1.75
        let p75 = pruner(75.0, 0, 0, 1, 1); // reference 3.25
        assert!(!prunes(&p25, &study, &[1.5])?);
        assert!(prunes(&p25, &study, &[2.0])?);
        assert!(!prunes(&p75, &study, &[3.0])?);
        assert!(prunes(&p75, &study, &[3.5])?);
        Ok(())
    }

    #[test]
    fn maximize_mirrors_the_percentile() -> Result<()> {
        let study = study(Direction::Maximize)?;
        for v in [1.0, 2.0, 3.0, 4.0] {
            complete(&study, &[v])?;
        }
        // Maximizing, the 25th percentile keeps the top quarter: reference is the 75th
        // percentile, 3.25.
        let p25 = pruner(25.0, 0, 0, 1, 1);
        assert!(prunes(&p25, &study, &[3.0])?);
        assert!(!prunes(&p25, &study, &[3.5])?);
        // The 75th keeps all but the bottom quarter: reference 1.75.
        let p75 = pruner(75.0, 0, 0, 1, 1);
        assert!(prunes(&p75, &study, &[1.5])?);
        assert!(!prunes(&p75, &study, &[2.0])?);
        // Median: 2.5; the best value so far counts (the maximum here).
        let median = pruner(50.0, 0, 0, 1, 1);
        assert!(prunes(&median, &study, &[2.0])?);
        assert!(!prunes(&median, &study, &[3.0])?);
        Ok(())
    }

    #[test]
    fn maximize_uses_the_maximum_over_steps() -> Result<()> {
        let study = study(Direction::Maximize)?;
        for v in [1.0, 2.0, 3.0] {
            complete(&study, &[v, v])?;
        }
        assert!(!prunes(&pruner(50.0, 0, 0, 1, 1), &study, &[5.0, 0.0])?);
        assert!(prunes(&pruner(50.0, 0, 0, 1, 1), &study, &[1.5, 0.0])?);
        Ok(())
    }

    #[test]
    fn all_nan_intermediate_values_are_pruned() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = pruner(50.0, 0, 0, 1, 1);
        complete(&study, &[1.0, 1.0])?;
        assert!(prunes(&p, &study, &[f64::NAN])?);
        assert!(prunes(&p, &study, &[f64::NAN, f64::NAN])?);
        // One number among NaNs is the best value.
        assert!(!prunes(&p, &study, &[f64::NAN, 0.5])?);
        assert!(prunes(&p, &study, &[f64::NAN, 5.0])?);
        // But not before startup: no completed trial, no decision.
        let empty = self::study(Direction::Minimize)?;
        assert!(!prunes(&p, &empty, &[f64::NAN])?);
        Ok(())
    }

    #[test]
    fn nan_values_of_completed_trials_are_ignored() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = pruner(50.0, 0, 0, 1, 1);
        complete(&study, &[f64::NAN, 1.0])?;
        complete(&study, &[1.0, 1.0])?;
        complete(&study, &[3.0, 1.0])?;
        // Step 0 reference: median of [1, 3] = 2.
        assert!(prunes(&p, &study, &[2.5])?);
        assert!(!prunes(&p, &study, &[1.5])?);
        Ok(())
    }

    #[test]
    fn a_trial_without_reports_is_kept() -> Result<()> {
        let study = study(Direction::Minimize)?;
        complete(&study, &[1.0])?;
        let t = study.ask()?;
        assert!(!pruner(50.0, 0, 0, 1, 1).prune(&study.view(), t.frozen())?);
        Ok(())
    }

    #[test]
    fn added_trials_count_as_history() -> Result<()> {
        let study = study(Direction::Minimize)?;
        for v in [1.0, 2.0, 3.0] {
            let mut rec = FrozenTrial::completed(Vec::new(), vec![v]);
            rec.intermediate_values.insert(4, vec![v]);
            study.add_trial(&rec)?;
        }
        let p = pruner(50.0, 3, 0, 1, 1);
        let mut t = FrozenTrial::new_running(TrialId(999), 99);
        t.intermediate_values.insert(4, vec![2.5]);
        assert!(p.prune(&study.view(), &t)?);
        t.intermediate_values.insert(3, vec![1.5]);
        assert!(!p.prune(&study.view(), &t)?);
        Ok(())
    }

    #[test]
    fn multi_objective_studies_are_unsupported() -> Result<()> {
        let study = study_with(vec![Direction::Minimize, Direction::Minimize])?;
        let mut t = study.ask()?;
        t.report_values(0, &[1.0, 2.0])?;
        match PercentilePruner::median().prune(&study.view(), t.frozen()) {
            Err(Error::Unsupported(msg)) => assert!(msg.contains("PercentilePruner"), "{msg}"),
            other => panic!("expected Unsupported, got {other:?}"),
        }
        Ok(())
    }
}
