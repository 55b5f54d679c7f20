//! Dead workers and retries: heartbeats while a trial runs, reaping Running trials whose
//! heartbeat stopped, and re-enqueueing failed trials with the same parameters.
//!
//! The rules follow Optuna's (`optuna/storages/_heartbeat.py`,
//! `RetryFailedTrialCallback`): a trial's heartbeat is refreshed every `interval` while it
//! runs; a worker that asks for a trial first fails the Running trials whose heartbeat is older
//! than the grace period (twice the interval by default), judged by the storage's clock; a
//! trial that never had a heartbeat (plain ask/tell) or is Paused is never reaped.

use super::{Study, FIXED_PARAMS_ATTR};
use crate::error::Result;
use crate::storage::Storage;
use crate::trial::{FrozenTrial, TrialId, TrialState};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Trial system attribute: the number of the trial a retry chain started from.
pub const FAILED_TRIAL_ATTR: &str = "failed_trial";
/// Trial system attribute: the numbers of every earlier attempt of a retried trial, oldest first.
pub const RETRY_HISTORY_ATTR: &str = "retry_history";

/// How often running trials prove they are alive, and how long silence means dead.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Heartbeat {
    /// How often a running trial's heartbeat is refreshed.
    pub interval: Duration,
    /// How old a heartbeat may get before its trial counts as dead.
    pub grace_period: Duration,
}

impl Heartbeat {
    /// Heartbeats every `interval` (fractions of a second allowed), with the default grace
    /// period of twice the interval.
    pub fn every(interval: Duration) -> Self {
        Heartbeat {
            interval,
            grace_period: interval * 2,
        }
    }

    /// The same heartbeat with another grace period.
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace_period = grace;
        self
    }
}

/// Which failed trials are tried again, and how often: the one retry mechanism, used for
/// trials whose worker died and (optionally) for trials that failed on their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times one configuration is retried at most.
    pub max_retry: u32,
    /// Also retry trials that failed on their own (an error, a panic, a crash of the trial's
    /// program), not only those whose worker died.
    pub retry_failed: bool,
}

impl RetryPolicy {
    /// Retry trials whose worker died, up to `max_retry` times.
    pub fn stale(max_retry: u32) -> Self {
        RetryPolicy {
            max_retry,
            retry_failed: false,
        }
    }

    /// Retry every failed trial, up to `max_retry` times.
    pub fn any_failure(max_retry: u32) -> Self {
        RetryPolicy {
            max_retry,
            retry_failed: true,
        }
    }
}

/// Refreshes one trial's heartbeat on a background thread until dropped.
pub(crate) struct HeartbeatThread {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl HeartbeatThread {
    /// Records a first heartbeat now, then every `interval` until the returned value drops.
    pub(crate) fn start(
        storage: Arc<dyn Storage>,
        trial: TrialId,
        interval: Duration,
    ) -> Result<HeartbeatThread> {
        storage.record_heartbeat(trial)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let handle = std::thread::Builder::new()
            .name("ferrotune-heartbeat".into())
            .spawn(move || {
                let (lock, cvar) = &*signal;
                let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    let (guard, timeout) = cvar
                        .wait_timeout(stopped, interval)
                        .unwrap_or_else(|e| e.into_inner());
                    stopped = guard;
                    if *stopped {
                        return;
                    }
                    if timeout.timed_out() {
                        if let Err(e) = storage.record_heartbeat(trial) {
                            tracing::warn!("heartbeat of trial {trial} failed: {e}");
                        }
                    }
                }
            })
            .map_err(|e| crate::Error::Storage(format!("cannot start heartbeat thread: {e}")))?;
        Ok(HeartbeatThread {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for HeartbeatThread {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cvar.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Study {
    /// Fails the Running trials whose heartbeat is older than the grace period (their worker
    /// died or hung), recording why, and retries them under the study's retry policy. Returns
    /// the trials this call failed (another worker may reap some first). A study without
    /// heartbeats reaps nothing.
    pub fn fail_stale_trials(&self) -> Result<Vec<Arc<FrozenTrial>>> {
        let Some(heartbeat) = self.inner.heartbeat else {
            return Ok(Vec::new());
        };
        let storage = &self.inner.storage;
        let mut failed = Vec::new();
        for id in storage.stale_trials(self.inner.id, heartbeat.grace_period)? {
            let reason = format!(
                "no heartbeat for more than {:?}: its worker died or hung",
                heartbeat.grace_period
            );
            if storage.set_trial_state(
                id,
                TrialState::Running,
                TrialState::Fail,
                None,
                Some(&reason),
            )? {
                let trial = storage.trial(id)?;
                tracing::warn!(study = self.name(), trial = trial.number, "{reason}");
                if self.inner.retry.is_some() {
                    self.retry_trial(&trial)?;
                }
                failed.push(trial);
            }
        }
        self.scheduler_reaped(&failed)?;
        Ok(failed)
    }

    /// Enqueues a new attempt of `trial` with the same parameters and user attributes, linked
    /// to it through the `failed_trial` and `retry_history` system attributes, unless the
    /// chain has used up the retry policy's `max_retry` (or the study has no policy). Returns
    /// the enqueued trial.
    pub fn retry_trial(&self, trial: &FrozenTrial) -> Result<Option<Arc<FrozenTrial>>> {
        let Some(policy) = self.inner.retry else {
            return Ok(None);
        };
        let mut history: Vec<u64> = trial
            .system_attrs
            .get(RETRY_HISTORY_ATTR)
            .and_then(|h| serde_json::from_value(h.clone()).ok())
            .unwrap_or_default();
        if history.len() >= policy.max_retry as usize {
            tracing::warn!(
                study = self.name(),
                trial = trial.number,
                "not retried: {} attempt(s) already failed (max_retry = {})",
                history.len() + 1,
                policy.max_retry
            );
            return Ok(None);
        }
        let original = history.first().copied().unwrap_or(trial.number);
        history.push(trial.number);
        let fixed: BTreeMap<&str, &crate::ParamValue> = trial.params.iter().collect();
        let mut template = FrozenTrial::new_running(TrialId(0), 0);
        template.state = TrialState::Waiting;
        template.datetime_start = None;
        template.user_attrs = trial.user_attrs.clone();
        template
            .system_attrs
            .insert(FIXED_PARAMS_ATTR.into(), serde_json::to_value(fixed)?);
        template
            .system_attrs
            .insert(FAILED_TRIAL_ATTR.into(), Value::from(original));
        template
            .system_attrs
            .insert(RETRY_HISTORY_ATTR.into(), serde_json::to_value(&history)?);
        let retry = self.inner.storage.add_trial(self.inner.id, &template)?;
        tracing::info!(
            study = self.name(),
            trial = trial.number,
            retry = retry.number,
            "failed trial re-enqueued"
        );
        Ok(Some(Arc::new(retry)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Catch, Optimize, Trial, TrialError};

    fn study(retry: RetryPolicy) -> Study {
        Study::builder()
            .seed(4)
            .heartbeat(
                Heartbeat::every(Duration::from_millis(40))
                    .grace_period(Duration::from_millis(150)),
            )
            .retry(retry)
            .build()
            .unwrap()
    }

    /// A worker that asked for a trial, beat once and vanished.
    fn abandoned_trial(study: &Study) -> FrozenTrial {
        let mut t = study.ask().unwrap();
        t.suggest_float("x", 0.0, 1.0).unwrap();
        t.set_user_attr("origin", "first").unwrap();
        study.storage().record_heartbeat(t.frozen().id).unwrap();
        t.frozen().clone()
    }

    #[test]
    fn a_dead_workers_trial_is_failed_and_retried_with_its_parameters() {
        let s = study(RetryPolicy::stale(2));
        let dead = abandoned_trial(&s);
        let plain = s.ask().unwrap(); // ask/tell without heartbeats: never reaped
        assert!(s.fail_stale_trials().unwrap().is_empty(), "not stale yet");
        std::thread::sleep(Duration::from_millis(300));
        let failed = s.fail_stale_trials().unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].number, dead.number);
        assert_eq!(failed[0].state, TrialState::Fail);
        assert!(failed[0]
            .fail_reason
            .as_deref()
            .unwrap()
            .contains("heartbeat"));
        assert!(s.fail_stale_trials().unwrap().is_empty(), "reaped once");

        let x = dead.params["x"].as_f64().unwrap();
        s.optimize(
            move |t: &mut Trial| -> Result<f64, TrialError> { Ok(t.suggest_float("x", 0.0, 1.0)?) },
            Optimize::trials(1),
        )
        .unwrap();
        let retry = s.trials().unwrap().into_iter().last().unwrap();
        assert_eq!(retry.state, TrialState::Complete);
        assert_eq!(retry.params["x"].as_f64(), Some(x), "same parameters");
        assert_eq!(retry.user_attrs["origin"], "first");
        assert_eq!(
            retry.system_attrs[FAILED_TRIAL_ATTR],
            Value::from(dead.number)
        );
        assert_eq!(
            retry.system_attrs[RETRY_HISTORY_ATTR],
            serde_json::json!([dead.number])
        );
        assert_eq!(
            s.trial_by_number(plain.number()).unwrap().state,
            TrialState::Running
        );
    }

    #[test]
    fn live_trials_keep_beating_and_are_never_reaped() {
        let s = study(RetryPolicy::stale(1));
        s.optimize(
            |t: &mut Trial| -> Result<f64, TrialError> {
                // Another worker reaping while this trial runs finds it alive.
                std::thread::sleep(Duration::from_millis(400));
                assert!(t.study().fail_stale_trials().unwrap().is_empty());
                Ok(t.suggest_float("x", 0.0, 1.0)?)
            },
            Optimize::trials(4).jobs(2),
        )
        .unwrap();
        assert_eq!(s.trials_in(&[TrialState::Complete]).unwrap().len(), 4);
    }

    #[test]
    fn retries_stop_at_max_retry() {
        let s = study(RetryPolicy::any_failure(2));
        s.optimize(
            |t: &mut Trial| -> Result<f64, TrialError> {
                t.suggest_int("k", 1, 3)?;
                Err(TrialError::fail("always fails"))
            },
            Optimize::trials(10).catch(Catch::Everything),
        )
        .unwrap();
        let trials = s.trials().unwrap();
        // Each configuration is tried three times: the first attempt and two retries, the
        // retries running first (they are queued), so 10 trials hold chains of 3.
        let chains: Vec<Vec<u64>> = trials
            .iter()
            .filter_map(|t| t.system_attrs.get(RETRY_HISTORY_ATTR))
            .map(|h| serde_json::from_value(h.clone()).unwrap())
            .collect();
        assert!(chains.iter().all(|c| c.len() <= 2), "{chains:?}");
        assert!(chains.iter().any(|c| c.len() == 2), "{chains:?}");
        for t in trials.iter().filter(|t| t.state != TrialState::Waiting) {
            if let Some(orig) = t
                .system_attrs
                .get(FAILED_TRIAL_ATTR)
                .and_then(Value::as_u64)
            {
                assert_eq!(t.params["k"], trials[orig as usize].params["k"]);
            }
        }
    }

    #[test]
    fn a_failed_trial_is_retried_once_and_then_succeeds() {
        let s = study(RetryPolicy::any_failure(1));
        s.optimize(
            |t: &mut Trial| -> Result<f64, TrialError> {
                let x = t.suggest_float("x", 0.0, 1.0)?;
                if !t.frozen().system_attrs.contains_key(FAILED_TRIAL_ATTR) {
                    return Err(TrialError::fail("flaky"));
                }
                Ok(x)
            },
            Optimize::trials(2).catch(Catch::Everything),
        )
        .unwrap();
        let trials = s.trials().unwrap();
        assert_eq!(trials[0].state, TrialState::Fail);
        assert_eq!(trials[1].state, TrialState::Complete);
        assert_eq!(trials[1].params["x"], trials[0].params["x"]);
    }
}
