//! The study-wide trial budget (`--trials N`), and trials that repeat an earlier attempt.
//!
//! `--trials N` means N *outcomes*: N configurations tried to the end (Complete, Pruned, or
//! Fail without a retry). A failed attempt that is tried again is not an outcome of its own:
//! its repetition replaces it. Repetitions are the trials the library's retry mechanism
//! enqueues (`Study::retry_trial`, and the reaping of dead workers' trials) and the trials an
//! interrupted run re-queues; all of them carry the `failed_trial` system attribute.
//!
//! The library caps the number of trial *records* atomically (`StudyBuilder::max_trials`), and
//! repetitions are records too. So the runner caps records at N plus the repetitions it knows
//! of: fresh trials then never exceed N, whatever the runners on other machines do (a stale
//! count of repetitions only makes the cap lower), and a run that reaches the cap re-counts
//! before it stops. This way a retried failure never pushes the study past N, and never
//! takes the place of a fresh configuration either.
//!
//! With a scheduler, `--trials N` counts new configurations too. A trial resumed from its
//! checkpoint is the same record, and a PBT child (a new record that continues its parent's
//! model with explored parameters) continues a configuration already counted: children are
//! added to the cap like repeats. A trial paused at a rung has an outcome for now (the bar
//! counts it as done); an exploited PBT member does not (its child goes on).

use super::progress::Counts;
use ferrotune::study::{
    FAILED_TRIAL_ATTR, FIXED_PARAMS_ATTR, REPLACED_BY_ATTR, RESUME_FROM_ATTR, RETRY_HISTORY_ATTR,
};
use ferrotune::trial::TrialId;
use ferrotune::{Direction, FrozenTrial, Study, TrialState};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Trial system attribute: on a trial re-queued after an interruption, the number of the
/// interrupted trial.
pub const INTERRUPTED_TRIAL_ATTR: &str = "ferrotune:interrupted_trial";

/// Where a study stands, from its trial records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Standing {
    /// Trial records of every state.
    pub records: u64,
    /// Records that repeat an earlier, failed attempt.
    pub repeats: u64,
    /// Records waiting to be claimed (retries, re-queued and enqueued trials, PBT children).
    pub waiting: u64,
    /// PBT children: records that continue another trial's model.
    pub children: u64,
    /// Finished records whose configuration a PBT child continues.
    pub replaced: u64,
    /// The counts the progress display starts from.
    pub counts: Counts,
}

impl Standing {
    /// Reads the standing from a study's trials; `direction` picks the best value (one
    /// objective).
    pub fn of(trials: &[Arc<FrozenTrial>], direction: Option<Direction>) -> Standing {
        let mut s = Standing {
            records: trials.len() as u64,
            ..Standing::default()
        };
        let mut finished = 0u64;
        for t in trials {
            if t.system_attrs.contains_key(FAILED_TRIAL_ATTR) {
                s.repeats += 1;
            }
            if t.system_attrs.contains_key(RESUME_FROM_ATTR) {
                s.children += 1;
            }
            if t.state.is_finished() && t.system_attrs.contains_key(REPLACED_BY_ATTR) {
                s.replaced += 1;
            }
            match t.state {
                TrialState::Waiting => s.waiting += 1,
                TrialState::Complete => {
                    s.counts.complete += 1;
                    if let (Some(d), Some(v)) = (direction, t.value()) {
                        if t.is_feasible() && s.counts.best.is_none_or(|(b, _)| d.better(v, b)) {
                            s.counts.best = Some((v, t.number));
                        }
                    }
                }
                TrialState::Pruned => s.counts.pruned += 1,
                TrialState::Fail => s.counts.failed += 1,
                TrialState::Paused => s.counts.paused += 1,
                _ => {}
            }
            if t.state.is_finished() || t.state == TrialState::Paused {
                finished += 1;
            }
        }
        // Every repeat replaces one finished (failed) attempt; an exploited PBT member goes
        // on as its child.
        s.counts.done = finished.saturating_sub(s.repeats + s.replaced);
        s
    }

    /// The cap on trial records that lets `trials` fresh configurations run.
    pub fn cap(&self, trials: u64) -> u64 {
        trials
            .saturating_add(self.repeats)
            .saturating_add(self.children)
    }
}

/// Re-queues an interrupted trial with the same parameters and user attributes, linked to its
/// retry chain like a retry, but without counting as one: its `retry_history` is left as it
/// was, so `--retries` still allows as many retries as before.
pub fn requeue_interrupted(study: &Study, trial: &FrozenTrial) -> ferrotune::Result<FrozenTrial> {
    let fixed: BTreeMap<&str, &ferrotune::ParamValue> = trial.params.iter().collect();
    let mut template = FrozenTrial::new_running(TrialId(0), 0);
    template.state = TrialState::Waiting;
    template.datetime_start = None;
    template.user_attrs = trial.user_attrs.clone();
    let attrs = &mut template.system_attrs;
    attrs.insert(FIXED_PARAMS_ATTR.into(), serde_json::to_value(fixed)?);
    let origin = trial
        .system_attrs
        .get(FAILED_TRIAL_ATTR)
        .cloned()
        .unwrap_or(Value::from(trial.number));
    attrs.insert(FAILED_TRIAL_ATTR.into(), origin);
    if let Some(history) = trial.system_attrs.get(RETRY_HISTORY_ATTR) {
        attrs.insert(RETRY_HISTORY_ATTR.into(), history.clone());
    }
    attrs.insert(INTERRUPTED_TRIAL_ATTR.into(), Value::from(trial.number));
    study.storage().add_trial(study.id(), &template)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrotune::{RetryPolicy, SamplerSpec};

    fn study(retry: u32) -> Study {
        Study::builder()
            .sampler(SamplerSpec::Random)
            .seed(3)
            .retry(RetryPolicy::any_failure(retry))
            .build()
            .unwrap()
    }

    #[test]
    fn retries_and_requeued_trials_replace_their_failed_attempt() {
        let s = study(2);
        let mut t = s.ask().unwrap();
        t.suggest_float("x", 0.0, 1.0).unwrap();
        let x = t.frozen().params["x"].clone();
        let failed = s.tell_failed(t, "boom").unwrap();
        // The next trial asked is `number`, with the failed configuration.
        let ask_again = |number: u64| {
            let mut t = s.ask().unwrap();
            assert_eq!(t.number(), number);
            assert_eq!(
                t.suggest_float("x", 0.0, 1.0).unwrap().to_bits(),
                x.as_f64().unwrap().to_bits()
            );
            t
        };
        let retry = s.retry_trial(&failed).unwrap().unwrap();
        // The retry runs and is interrupted: re-queued, not counted as a second retry.
        let interrupted = s
            .tell_failed(ask_again(retry.number), "interrupted")
            .unwrap();
        let again = requeue_interrupted(&s, &interrupted).unwrap();
        assert_eq!(again.state, TrialState::Waiting);
        assert_eq!(again.system_attrs[FAILED_TRIAL_ATTR], Value::from(0u64));
        assert_eq!(
            again.system_attrs[RETRY_HISTORY_ATTR],
            serde_json::json!([0])
        );
        assert_eq!(
            again.system_attrs[INTERRUPTED_TRIAL_ATTR],
            Value::from(interrupted.number)
        );
        let failed_again = s.tell_failed(ask_again(again.number), "boom").unwrap();
        // One retry was used; the policy allows a second.
        assert!(s.retry_trial(&failed_again).unwrap().is_some());

        let st = Standing::of(&s.trials().unwrap(), Some(Direction::Minimize));
        assert_eq!(st.records, 4);
        assert_eq!(st.repeats, 3);
        assert_eq!(st.waiting, 1);
        assert_eq!(st.counts.failed, 3);
        assert_eq!(
            st.counts.done, 0,
            "the one configuration is still being tried"
        );
        assert_eq!(st.cap(10), 13, "ten fresh configurations still fit");
    }

    #[test]
    fn pbt_children_continue_counted_configurations_and_paused_trials_count_as_done() {
        let record = |n: u64, state: TrialState, attrs: &[(&str, Value)]| {
            let mut t = FrozenTrial::new_running(TrialId(n), n);
            t.state = state;
            for (k, v) in attrs {
                t.system_attrs.insert((*k).to_owned(), v.clone());
            }
            Arc::new(t)
        };
        let from = serde_json::json!({"trial": 1, "step": 4});
        let trials = [
            record(
                0,
                TrialState::Pruned,
                &[(REPLACED_BY_ATTR, Value::from(4u64))],
            ),
            record(1, TrialState::Complete, &[]),
            record(2, TrialState::Paused, &[]),
            record(3, TrialState::Running, &[]),
            record(4, TrialState::Complete, &[(RESUME_FROM_ATTR, from.clone())]),
            record(5, TrialState::Waiting, &[(RESUME_FROM_ATTR, from)]),
        ];
        let st = Standing::of(&trials, None);
        assert_eq!((st.children, st.replaced), (2, 1));
        assert_eq!(st.counts.paused, 1);
        // Trials 1, 2 (paused) and 4 (which continues 0): three configurations so far.
        assert_eq!(st.counts.done, 3);
        assert_eq!(st.cap(4), 6, "children do not use the budget");
    }

    #[test]
    fn a_fresh_trial_counts_once_done() {
        let s = study(0);
        for v in [3.0, 1.0, 2.0] {
            let t = s.ask().unwrap();
            s.tell(t, v).unwrap();
        }
        let t = s.ask().unwrap();
        s.tell_pruned(t).unwrap();
        let t = s.ask().unwrap();
        s.tell_failed(t, "no retry").unwrap();
        let _running = s.ask().unwrap();
        let st = Standing::of(&s.trials().unwrap(), Some(Direction::Minimize));
        assert_eq!(st.counts.done, 5);
        assert_eq!(st.counts.complete, 3);
        assert_eq!(st.counts.pruned, 1);
        assert_eq!(st.counts.failed, 1);
        assert_eq!(st.counts.best, Some((1.0, 1)));
        assert_eq!(st.cap(6), 6);
        let max = Standing::of(&s.trials().unwrap(), Some(Direction::Maximize));
        assert_eq!(max.counts.best, Some((3.0, 0)));
    }
}
