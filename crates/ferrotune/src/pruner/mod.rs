//! Pruners: they stop unpromising trials early, judged from the intermediate values every trial
//! has reported to storage, so the same decision is reached in any thread, process or machine.
//!
//! A trial asks through `Trial::should_prune` after reporting; the pruner answers from the
//! study's history. Pruners here are pure functions of that history (plus their
//! configuration); the multi-fidelity ones ([`SuccessiveHalvingPruner`],
//! [`HyperbandPruner`]) also keep what they decide in storage: each trial's value at each
//! rung in its system attributes, and an "auto" resource in the study's, so every worker
//! agrees.

mod hyperband;
mod nop;
mod patient;
mod percentile;
mod spec;
mod successive_halving;
mod threshold;
mod wilcoxon;

#[cfg(test)]
mod multi_fidelity_tests;
#[cfg(test)]
mod test_util;

pub use hyperband::{HyperbandBrackets, HyperbandPruner};
pub use nop::NopPruner;
pub use patient::PatientPruner;
pub use percentile::{MedianPruner, PercentilePruner};
pub use spec::{PrunerSpec, Resource};
pub use successive_halving::{SuccessiveHalvingPruner, RUNG_ATTR_PREFIX};
pub use threshold::ThresholdPruner;
pub use wilcoxon::WilcoxonPruner;

use crate::error::{Error, Result};
use crate::storage::StudyId;
use crate::study::{StudyView, TrialFilter};
use crate::trial::FrozenTrial;
use std::sync::{Mutex, PoisonError};

/// Decides whether a running trial should stop.
pub trait Pruner: Send + Sync + std::fmt::Debug {
    /// Whether `trial` (with the intermediate values it has reported so far) should be pruned.
    fn prune(&self, study: &StudyView<'_>, trial: &FrozenTrial) -> Result<bool>;

    /// The trials the sampler is shown while it samples `trial`, as a filter over the
    /// study's trials; `None` (the default) shows them all.
    ///
    /// [`HyperbandPruner`] shows only the trials of `trial`'s own bracket, as Optuna does,
    /// so a model-based sampler such as TPE learns each bracket separately (brackets stop
    /// trials at different steps, so their pruned trials are not comparable). A trial asks
    /// once, on its first sampled parameter; the filter is applied once to the history that
    /// trial's sampling reads. `before_trial`, `after_trial` and the pruner itself still get
    /// the whole study.
    fn trial_filter(
        &self,
        _study: &StudyView<'_>,
        _trial: &FrozenTrial,
    ) -> Result<Option<TrialFilter>> {
        Ok(None)
    }
}

/// Errors unless the study has one objective, naming the pruner.
pub(crate) fn require_single_objective(study: &StudyView<'_>, pruner: &str) -> Result<()> {
    if study.directions().len() == 1 {
        Ok(())
    } else {
        Err(Error::Unsupported(format!(
            "{pruner} compares one objective, but the study has {}; use NopPruner, \
             SuccessiveHalvingPruner or HyperbandPruner for multi-objective studies",
            study.directions().len()
        )))
    }
}

/// Whether `step` is the first reported step of its pruning interval (Optuna's rule): with
/// warm-up `w` and interval `k`, pruning is checked at the first report at or after each of
/// `w, w + k, w + 2k, …`.
pub(crate) fn is_first_in_interval(
    trial: &FrozenTrial,
    step: u64,
    n_warmup_steps: u64,
    interval_steps: u64,
) -> bool {
    let interval = interval_steps.max(1);
    let lower = (step.saturating_sub(n_warmup_steps)) / interval * interval + n_warmup_steps;
    match trial.intermediate_values.range(..step).next_back() {
        None => true,
        Some((&previous, _)) => previous < lower,
    }
}

/// A step count a pruner decides once per study from the study's history (an "auto"
/// resource) and keeps in the study's system attributes under `key`, first writer wins: every
/// thread, process and later session of the study then uses the same value, even if the
/// history it was decided from has grown since. Each pruner object remembers the values it
/// has read, per study, so only the first call reads storage.
#[derive(Debug)]
pub(crate) struct StudyDecision {
    key: &'static str,
    /// (storage address, study id, study name) → value.
    known: Mutex<Vec<(usize, StudyId, String, u64)>>,
}

impl StudyDecision {
    pub(crate) fn new(key: &'static str) -> Self {
        StudyDecision {
            key,
            known: Mutex::new(Vec::new()),
        }
    }

    /// The study's value: remembered, stored, or decided now by `decide` (`None`: not yet
    /// decidable, e.g. no trial has completed).
    pub(crate) fn get_or_decide(
        &self,
        study: &StudyView<'_>,
        decide: impl FnOnce() -> Result<Option<u64>>,
    ) -> Result<Option<u64>> {
        let storage = study.storage();
        let address = storage as *const dyn crate::storage::Storage as *const () as usize;
        let id = study.study_id();
        let this =
            |e: &&(usize, StudyId, String, u64)| e.0 == address && e.1 == id && e.2 == study.name();
        // The list holds plain values, so one left by a panicking thread is still sound.
        if let Some(e) = self
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(this)
        {
            return Ok(Some(e.3));
        }
        let parse = |v: serde_json::Value| {
            v.as_u64().ok_or_else(|| {
                Error::Storage(format!(
                    "study attribute `{}` holds {v}, not a step count",
                    self.key
                ))
            })
        };
        let value = match storage.study_system_attr(id, self.key)? {
            Some(v) => parse(v)?,
            None => {
                let Some(v) = decide()? else {
                    return Ok(None);
                };
                parse(storage.set_study_system_attr_if_absent(
                    id,
                    self.key,
                    &serde_json::Value::from(v),
                )?)?
            }
        };
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if !known.iter().any(|e| this(&e)) {
            known.push((address, id, study.name().to_owned(), value));
        }
        Ok(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::{Direction, Study};
    use crate::trial::TrialId;

    /// A running trial record with a report at each of `steps`.
    fn reported_at(steps: &[u64]) -> FrozenTrial {
        let mut t = FrozenTrial::new_running(TrialId(0), 0);
        for &s in steps {
            t.intermediate_values.insert(s, vec![1.0]);
        }
        t
    }

    #[test]
    fn first_report_is_always_first_in_its_interval() {
        assert!(is_first_in_interval(&reported_at(&[0]), 0, 0, 1));
        assert!(is_first_in_interval(&reported_at(&[3]), 3, 0, 5));
        assert!(is_first_in_interval(&reported_at(&[7]), 7, 5, 3));
    }

    #[test]
    fn every_step_is_checked_with_interval_one() {
        let t = reported_at(&[0, 1, 2, 3]);
        for step in 1..=3 {
            assert!(is_first_in_interval(&t, step, 0, 1), "step {step}");
        }
    }

    #[test]
    fn only_the_first_report_of_each_interval_is_checked() {
        // Interval 3 from step 0: pruning steps 0, 3, 6, …
        let t = reported_at(&[0, 1, 2, 3, 4, 5, 6]);
        let checked: Vec<u64> = (1..=6)
            .filter(|&s| is_first_in_interval(&t, s, 0, 3))
            .collect();
        assert_eq!(checked, vec![3, 6]);
    }

    #[test]
    fn intervals_start_at_the_warmup() {
        // Warm-up 5, interval 3: pruning steps 5, 8, 11, …
        let t = reported_at(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        let checked: Vec<u64> = (5..=11)
            .filter(|&s| is_first_in_interval(&t, s, 5, 3))
            .collect();
        assert_eq!(checked, vec![5, 8, 11]);
    }

    #[test]
    fn a_skipped_pruning_step_is_caught_by_the_next_report() {
        // Reports at 0 and 7 with warm-up 5, interval 3: 7 is the first report at or after 5.
        assert!(is_first_in_interval(&reported_at(&[0, 7]), 7, 5, 3));
        // Reports at 6 and 7: 6 already was the first report of the interval starting at 5.
        assert!(!is_first_in_interval(&reported_at(&[6, 7]), 7, 5, 3));
        // Reports every 10 steps with interval 3: each one opens a new interval.
        let t = reported_at(&[0, 10, 20, 30]);
        assert!(is_first_in_interval(&t, 10, 0, 3));
        assert!(is_first_in_interval(&t, 30, 0, 3));
        // Reports at 10 and 11 with interval 3: 10 ∈ [9, 12) came first.
        assert!(!is_first_in_interval(&reported_at(&[10, 11]), 11, 0, 3));
        assert!(is_first_in_interval(&reported_at(&[11, 12]), 12, 0, 3));
    }

    #[test]
    fn interval_zero_is_treated_as_one() {
        let t = reported_at(&[0, 1, 2]);
        assert!(is_first_in_interval(&t, 2, 0, 0));
    }

    #[test]
    fn single_objective_is_required() -> Result<()> {
        let single = Study::builder().pruner(PrunerSpec::Nop).seed(1).build()?;
        assert!(require_single_objective(&single.view(), "X").is_ok());
        let multi = Study::builder()
            .directions(vec![Direction::Minimize, Direction::Maximize])
            .pruner(PrunerSpec::Nop)
            .seed(1)
            .build()?;
        match require_single_objective(&multi.view(), "SomePruner") {
            Err(Error::Unsupported(msg)) => {
                assert!(msg.contains("SomePruner"), "{msg}");
                assert!(msg.contains('2'), "{msg}");
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn nop_never_prunes() -> Result<()> {
        let study = Study::builder().pruner(PrunerSpec::Nop).seed(1).build()?;
        let mut t = study.ask()?;
        t.report(0, f64::NAN)?;
        assert!(!NopPruner.prune(&study.view(), t.frozen())?);
        Ok(())
    }
}
