//! `WilcoxonPruner`: stop a trial once a signed-rank test says it is worse than the best one.

use super::{require_single_objective, Pruner};
use crate::error::{Error, Result};
use crate::math::wilcoxon::{signed_rank_p_value, Alternative};
use crate::study::{Direction, StudyView};
use crate::trial::FrozenTrial;

/// Prunes a trial when a one-sided Wilcoxon signed-rank test (Wilcoxon, "Individual
/// comparisons by ranking methods", Biometrics Bulletin 1(6), 1945) on its intermediate
/// values, paired step by step with the best trial's, says it is worse than the best trial
/// with p-value below `p_threshold`. Semantics and defaults are Optuna 5.0's
/// `WilcoxonPruner`.
///
/// It is meant for objectives that average many evaluations — the folds of a
/// cross-validation, the instances of a benchmark — where each step is one evaluation (its
/// id, in any order; shuffling the order per trial helps) and the objective is their mean.
/// Values are compared on the steps both trials reported, so easy and hard instances are
/// paired with each other.
///
/// - No decision until the two trials share `max(2, n_startup_steps)` steps (default 2).
/// - The test: differences `own − best` (minimize; the alternative is that they tend to be
///   positive, mirrored for maximize), zero differences split between the positive and the
///   negative rank sums (SciPy's `zero_method="zsplit"`), the exact null distribution for
///   small samples and the normal approximation with the tie correction otherwise, exactly as
///   SciPy's `method="auto"` chooses (see `math::wilcoxon`).
/// - Safety rule: a trial whose average over the shared steps is already at least as good as
///   the best trial's average over the same steps is never pruned, whatever the test says
///   (it can disagree with the means when the differences are skewed). Optuna compares with
///   the best trial's average over all of its steps; over the same steps the two averages
///   are paired like the test, and they coincide whenever the trial's steps are a subset of
///   the best's, as they are when the best trial ran every step.
/// - A trial with a non-finite intermediate value is never pruned (with a warning), nor is
///   any trial while the best trial has none or a non-finite one.
///
/// The p-value is computed anew after every report, so the chance of pruning a trial that
/// is as good as the best is about twice `p_threshold` rather than `p_threshold` (Optuna's
/// note). Optuna suggests returning the mean so far instead of stopping with
/// `TrialError::Pruned`, so that the sampler keeps a usable value for the trial.
///
/// One objective only.
#[derive(Debug, Clone, PartialEq)]
pub struct WilcoxonPruner {
    p_threshold: f64,
    n_startup_steps: u64,
}

impl Default for WilcoxonPruner {
    /// Optuna's defaults: `p_threshold = 0.1`, `n_startup_steps = 2`.
    fn default() -> Self {
        WilcoxonPruner {
            p_threshold: 0.1,
            n_startup_steps: 2,
        }
    }
}

impl WilcoxonPruner {
    /// A Wilcoxon pruner; `p_threshold ∈ [0, 1]` (larger prunes more eagerly).
    pub fn new(p_threshold: f64, n_startup_steps: u64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p_threshold) {
            return Err(Error::invalid_argument(
                "p_threshold",
                format!("must be in [0, 1], got {p_threshold}"),
            ));
        }
        Ok(WilcoxonPruner {
            p_threshold,
            n_startup_steps,
        })
    }
}

impl Pruner for WilcoxonPruner {
    fn prune(&self, study: &StudyView<'_>, trial: &FrozenTrial) -> Result<bool> {
        require_single_objective(study, "WilcoxonPruner")?;
        if trial.intermediate_values.is_empty() {
            return Ok(false);
        }
        let own = |step: u64| trial.intermediate(step).unwrap_or(f64::NAN);
        if trial
            .intermediate_values
            .keys()
            .any(|&s| !own(s).is_finite())
        {
            tracing::warn!(
                trial = trial.number,
                "the trial's intermediate values include infinity or NaN; WilcoxonPruner \
                 will not prune it"
            );
            return Ok(false);
        }
        let Some(best) = study.best_trial()? else {
            return Ok(false);
        };
        if best.intermediate_values.is_empty() {
            tracing::warn!(
                best = best.number,
                "the best trial has no intermediate values, so WilcoxonPruner cannot compare \
                 with it (give intermediate values to trials added with add_trial)"
            );
            return Ok(false);
        }
        if best
            .intermediate_values
            .keys()
            .any(|&s| !best.intermediate(s).is_some_and(f64::is_finite))
        {
            tracing::warn!(
                best = best.number,
                "the best trial's intermediate values include infinity or NaN; WilcoxonPruner \
                 will not prune"
            );
            return Ok(false);
        }
        let pairs: Vec<(f64, f64)> = trial
            .intermediate_values
            .keys()
            .filter_map(|&s| Some((own(s), best.intermediate(s)?)))
            .collect();
        if pairs.len() < trial.intermediate_values.len() {
            tracing::debug!(
                trial = trial.number,
                best = best.number,
                "steps the best trial lacks are ignored"
            );
        }
        if (pairs.len() as u64) < self.n_startup_steps.max(2) {
            return Ok(false);
        }
        let direction = study.directions()[0];
        let differences: Vec<f64> = pairs.iter().map(|(a, b)| a - b).collect();
        let alternative = match direction {
            Direction::Minimize => Alternative::Greater,
            Direction::Maximize => Alternative::Less,
        };
        let Some(p) = signed_rank_p_value(&differences, alternative) else {
            return Ok(false);
        };
        if p >= self.p_threshold {
            return Ok(false);
        }
        // Safety: the means say it is at least as good as the best so far.
        let n = pairs.len() as f64;
        let own_mean = pairs.iter().map(|p| p.0).sum::<f64>() / n;
        let best_mean = pairs.iter().map(|p| p.1).sum::<f64>() / n;
        Ok(direction.better(best_mean, own_mean))
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use crate::pruner::test_util::{running, study, study_with};
    use crate::study::Study;
    use crate::trial::TrialId;

    /// Completes a trial reporting `values[i]` at step `i`, with their mean as its value.
    fn complete(study: &Study, values: &[f64]) -> Result<()> {
        let t = running(study, values)?;
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        study.tell(t, mean)?;
        Ok(())
    }

    /// A running trial's record with `(step, value)` reports.
    fn trial(reports: &[(u64, f64)]) -> FrozenTrial {
        let mut t = FrozenTrial::new_running(TrialId(999), 99);
        for &(s, v) in reports {
            t.intermediate_values.insert(s, vec![v]);
        }
        t
    }

    fn steps(values: &[f64]) -> Vec<(u64, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as u64, v))
            .collect()
    }

    #[test]
    fn constructor_validates() {
        for bad in [-0.1, 1.5, f64::NAN] {
            match WilcoxonPruner::new(bad, 2) {
                Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "p_threshold"),
                other => panic!("expected InvalidArgument for {bad}, got {other:?}"),
            }
        }
        assert!(WilcoxonPruner::new(0.0, 0).is_ok());
        assert!(WilcoxonPruner::new(1.0, 0).is_ok());
        assert_eq!(
            WilcoxonPruner::default(),
            WilcoxonPruner::new(0.1, 2).expect("valid")
        );
    }

    #[test]
    fn prunes_a_consistently_worse_trial() -> Result<()> {
        let study = study(Direction::Minimize)?;
        complete(&study, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
        let p = WilcoxonPruner::default();
        let view = study.view();
        // Worse on every instance by 1..5: T⁺ = 15 of 15, p = 1/32 < 0.1.
        let worse = trial(&steps(&[2.0, 4.0, 6.0, 8.0, 10.0]));
        assert!(p.prune(&view, &worse)?);
        // Four worse: p = 1/16 < 0.1, still pruned; three: p = 1/8 ≥ 0.1, kept.
        assert!(p.prune(&view, &trial(&steps(&[2.0, 4.0, 6.0, 8.0])))?);
        assert!(!p.prune(&view, &trial(&steps(&[2.0, 4.0, 6.0])))?);
        // A stricter threshold waits for more evidence: 1/32 ≥ 0.03.
        let strict = WilcoxonPruner::new(0.03, 2)?;
        assert!(!strict.prune(&view, &worse)?);
        // Better everywhere: never pruned.
        assert!(!p.prune(&view, &trial(&steps(&[0.5, 1.5, 2.5, 3.5, 4.5])))?);
        Ok(())
    }

    #[test]
    fn steps_pair_by_id_in_any_order() -> Result<()> {
        let study = study(Direction::Minimize)?;
        complete(&study, &[5.0, 1.0, 9.0, 3.0, 7.0, 2.0])?;
        let p = WilcoxonPruner::default();
        // Reported in a shuffled order, each 0.5 worse than the best on the same instance.
        let t = trial(&[(4, 7.5), (1, 1.5), (5, 2.5), (0, 5.5), (3, 3.5)]);
        // All five differences are 0.5: ties (average ranks) → permutation distribution,
        // T⁺ = 15 is the maximum, p = 1/32.
        assert!(p.prune(&study.view(), &t)?);
        // Steps the best trial never reported are ignored: only steps 0 and 1 pair up.
        let t = trial(&[(0, 5.5), (1, 1.5), (10, 100.0), (11, 100.0), (12, 100.0)]);
        assert!(!p.prune(&study.view(), &t)?);
        Ok(())
    }

    #[test]
    fn startup_needs_enough_shared_steps() -> Result<()> {
        let study = study(Direction::Minimize)?;
        complete(&study, &[1.0; 10])?;
        let worse = |n: usize| trial(&steps(&vec![2.0; n]));
        // p for n equal positive differences (ties → sign flips): 1/2ⁿ.
        let p0 = WilcoxonPruner::new(0.6, 0)?;
        assert!(
            !p0.prune(&study.view(), &worse(1))?,
            "at least 2 pairs always"
        );
        assert!(p0.prune(&study.view(), &worse(2))?, "p = 1/4 < 0.6");
        let p5 = WilcoxonPruner::new(0.6, 5)?;
        assert!(!p5.prune(&study.view(), &worse(4))?);
        assert!(p5.prune(&study.view(), &worse(5))?);
        Ok(())
    }

    #[test]
    fn zero_differences_are_split() -> Result<()> {
        let study = study(Direction::Minimize)?;
        complete(&study, &[1.0, 2.0, 3.0, 4.0, 5.0])?;
        let p = WilcoxonPruner::new(0.07, 2)?;
        // Differences 0, 2, 3, 4, 5 → T⁺ = 14.5, p = 1/16 < 0.07.
        let t = trial(&steps(&[1.0, 4.0, 6.0, 8.0, 10.0]));
        assert!(p.prune(&study.view(), &t)?);
        assert!(!WilcoxonPruner::new(0.06, 2)?.prune(&study.view(), &t)?);
        // Identical to the best: all zeros, p = 1 — and the safety rule agrees.
        let same = trial(&steps(&[1.0, 2.0, 3.0, 4.0, 5.0]));
        assert!(!WilcoxonPruner::new(1.0, 2)?.prune(&study.view(), &same)?);
        Ok(())
    }

    #[test]
    fn the_safety_rule_keeps_a_trial_whose_mean_is_as_good() -> Result<()> {
        let study = study(Direction::Minimize)?;
        complete(&study, &[10.0, 10.0, 10.0, 10.0, 10.0, 10.0])?;
        // Slightly worse on five instances, much better on one: the ranks say worse
        // (T⁺ = 1+2+3+4+5 = 15 of 21; 14 of the 64 sign patterns reach 15, p ≈ 0.22), the
        // means say better.
        let skewed = trial(&steps(&[10.1, 10.2, 10.3, 10.4, 10.5, 0.0]));
        let eager = WilcoxonPruner::new(0.25, 2)?;
        assert!(!eager.prune(&study.view(), &skewed)?);
        // The same ranks with a mean that is worse are pruned.
        let worse = trial(&steps(&[10.1, 10.2, 10.3, 10.4, 10.5, 9.0]));
        assert!(eager.prune(&study.view(), &worse)?);
        Ok(())
    }

    #[test]
    fn maximize_mirrors_the_test() -> Result<()> {
        let study = study(Direction::Maximize)?;
        complete(&study, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
        let p = WilcoxonPruner::default();
        let view = study.view();
        assert!(p.prune(&view, &trial(&steps(&[0.0, 1.0, 2.0, 3.0, 4.0])))?);
        assert!(!p.prune(&view, &trial(&steps(&[2.0, 3.0, 4.0, 5.0, 6.0])))?);
        Ok(())
    }

    #[test]
    fn compares_with_the_best_trial() -> Result<()> {
        let study = study(Direction::Minimize)?;
        complete(&study, &[5.0, 5.0, 5.0, 5.0, 5.0])?;
        let p = WilcoxonPruner::default();
        let t = trial(&steps(&[3.0, 3.1, 3.2, 3.3, 3.4]));
        assert!(!p.prune(&study.view(), &t)?, "better than the only trial");
        complete(&study, &[1.0, 1.0, 1.0, 1.0, 1.0])?;
        assert!(p.prune(&study.view(), &t)?, "worse than the new best");
        Ok(())
    }

    #[test]
    fn no_decision_without_usable_values() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = WilcoxonPruner::new(1.0, 0)?;
        let bad = trial(&steps(&[9.0, 9.0, 9.0, 9.0]));
        assert!(!p.prune(&study.view(), &bad)?, "no best trial");
        // A best trial without intermediate values (added from elsewhere).
        study.add_trial(&FrozenTrial::completed(Vec::new(), vec![0.0]))?;
        assert!(!p.prune(&study.view(), &bad)?);
        let study = self::study(Direction::Minimize)?;
        complete(&study, &[1.0, 1.0, 1.0, 1.0])?;
        assert!(!p.prune(&study.view(), &trial(&[]))?);
        // Non-finite own values: never pruned.
        let nan = trial(&steps(&[9.0, f64::NAN, 9.0, 9.0]));
        assert!(!p.prune(&study.view(), &nan)?);
        let inf = trial(&steps(&[9.0, f64::INFINITY, 9.0, 9.0]));
        assert!(!p.prune(&study.view(), &inf)?);
        assert!(p.prune(&study.view(), &bad)?);
        // A best trial with a non-finite value: no decision.
        let study = self::study(Direction::Minimize)?;
        let mut t = study.ask()?;
        t.report(0, f64::INFINITY)?;
        t.report(1, 0.0)?;
        study.tell(t, -1.0)?;
        assert!(!p.prune(&study.view(), &bad)?);
        Ok(())
    }

    #[test]
    fn multi_objective_studies_are_unsupported() -> Result<()> {
        let study = study_with(vec![Direction::Minimize, Direction::Minimize])?;
        let t = study.ask()?;
        match WilcoxonPruner::default().prune(&study.view(), t.frozen()) {
            Err(Error::Unsupported(msg)) => assert!(msg.contains("WilcoxonPruner"), "{msg}"),
            other => panic!("expected Unsupported, got {other:?}"),
        }
        Ok(())
    }
}
