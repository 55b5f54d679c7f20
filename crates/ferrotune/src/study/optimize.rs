//! `Study::optimize`: the trial loop, on one thread or many.

use super::liveness::HeartbeatThread;
use super::scheduled::Assignment;
use super::{Outcome, Study};
use crate::error::{Error, Result};
use crate::objective::{Objective, TrialError};
use crate::trial::{FrozenTrial, TrialId, TrialState};
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Called after every finished trial with the study and the trial's final record; it may call
/// [`Study::stop`].
pub type Callback = Arc<dyn Fn(&Study, &FrozenTrial) + Send + Sync>;

/// The error an objective's panic is turned into (so a `Catch` predicate can recognize it).
#[derive(Debug, thiserror::Error)]
#[error("the objective panicked: {0}")]
pub struct PanicError(pub String);

/// A predicate over an objective's error (downcast it to inspect the type).
pub type CatchPredicate = Arc<dyn Fn(&(dyn std::error::Error + 'static)) -> bool + Send + Sync>;

/// Which objective failures are caught (the trial is recorded as Fail and the study goes on);
/// an uncaught failure is recorded as Fail too, and then stops the study.
#[derive(Clone, Default)]
pub enum Catch {
    /// Catch nothing: the first failure stops the study (Optuna's default).
    #[default]
    Nothing,
    /// Catch every failure, panics included.
    Everything,
    /// Catch the failures this predicate accepts (downcast to inspect the error type;
    /// panics arrive as [`PanicError`]).
    If(CatchPredicate),
}

impl Catch {
    fn catches(&self, error: &(dyn std::error::Error + 'static)) -> bool {
        match self {
            Catch::Nothing => false,
            Catch::Everything => true,
            Catch::If(pred) => pred(error),
        }
    }
}

/// Options of one [`Study::optimize`] call.
#[derive(Clone)]
#[must_use]
pub struct Optimize {
    n_trials: Option<u64>,
    timeout: Option<Duration>,
    n_jobs: usize,
    callbacks: Vec<Callback>,
    catch: Catch,
    handle_ctrl_c: bool,
}

impl Default for Optimize {
    fn default() -> Self {
        Optimize {
            n_trials: None,
            timeout: None,
            n_jobs: 1,
            callbacks: Vec::new(),
            catch: Catch::Nothing,
            handle_ctrl_c: true,
        }
    }
}

impl Optimize {
    /// Run `n` trials in this call (the study-wide cap is `StudyBuilder::max_trials`).
    pub fn trials(n: u64) -> Self {
        Optimize {
            n_trials: Some(n),
            ..Optimize::default()
        }
    }

    /// Run until stopped, the timeout passes, or the study's trial cap is reached.
    pub fn unbounded() -> Self {
        Optimize::default()
    }

    /// Start no new trial after `timeout` (running trials are not interrupted).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Evaluate up to `n` trials at once on `n` threads (at least 1).
    pub fn jobs(mut self, n: usize) -> Self {
        self.n_jobs = n.max(1);
        self
    }

    /// Adds a callback run after every finished trial.
    pub fn callback(mut self, f: impl Fn(&Study, &FrozenTrial) + Send + Sync + 'static) -> Self {
        self.callbacks.push(Arc::new(f));
        self
    }

    /// Which failures to catch.
    pub fn catch(mut self, catch: Catch) -> Self {
        self.catch = catch;
        self
    }

    /// Whether Ctrl-C is handled (on by default with the `signal` feature): the first press
    /// lets running trials finish and starts no new one; the second marks them failed and
    /// exits with status 130. Either way no trial is left Running.
    pub fn handle_ctrl_c(mut self, yes: bool) -> Self {
        self.handle_ctrl_c = yes;
        self
    }
}

/// What one `optimize` call shares between its worker threads.
pub(crate) struct Run {
    pub(crate) study: Study,
    started: AtomicU64,
    deadline: Option<Instant>,
    /// Trials this call is evaluating now (marked failed on a forced interrupt).
    pub(crate) running: Mutex<HashSet<TrialId>>,
    /// Set by the first Ctrl-C.
    #[cfg_attr(not(feature = "signal"), allow(dead_code))]
    pub(crate) interrupted: std::sync::atomic::AtomicBool,
    error: Mutex<Option<Error>>,
}

enum Next {
    Continue,
    Stop,
}

impl Study {
    /// Runs the objective on new trials until `options` say stop, the study is stopped, or an
    /// uncaught failure happens (returned as [`Error::ObjectiveFailed`]). Every trial this
    /// call starts ends recorded: Complete, Pruned or Fail.
    pub fn optimize<O: Objective>(&self, objective: O, options: Optimize) -> Result<()> {
        self.inner.stop.reset();
        let run = Arc::new(Run {
            study: self.clone(),
            started: AtomicU64::new(0),
            deadline: options.timeout.map(|t| Instant::now() + t),
            running: Mutex::new(HashSet::new()),
            interrupted: Default::default(),
            error: Mutex::new(None),
        });
        #[cfg(feature = "signal")]
        let _guard = options
            .handle_ctrl_c
            .then(|| super::interrupt::Guard::register(&run))
            .transpose()?;
        if options.n_jobs == 1 {
            worker(&run, &objective, &options);
        } else {
            std::thread::scope(|s| {
                for _ in 0..options.n_jobs {
                    s.spawn(|| worker(&run, &objective, &options));
                }
            });
        }
        let error = run.error.lock().unwrap_or_else(|e| e.into_inner()).take();
        match error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn worker<O: Objective>(run: &Run, objective: &O, options: &Optimize) {
    loop {
        if run.study.is_stopped() || run.deadline.is_some_and(|d| Instant::now() >= d) {
            return;
        }
        // With a scheduler only new configurations count against `n_trials` (resumed trials
        // and PBT children continue ones already counted); the scheduler asks when it needs one.
        if let (Some(n), false) = (options.n_trials, run.study.has_scheduler()) {
            if run.started.fetch_add(1, Ordering::SeqCst) >= n {
                return;
            }
        }
        match run_trial(run, objective, options) {
            Ok(Next::Continue) => {}
            Ok(Next::Stop) => return,
            Err(e) => {
                run.study.inner.stop.stop(&e.to_string());
                let mut slot = run.error.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert(e);
                return;
            }
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

fn run_trial<O: Objective>(run: &Run, objective: &O, options: &Optimize) -> Result<Next> {
    let study = &run.study;
    study.fail_stale_trials()?;
    let asked = if study.has_scheduler() {
        let mut may_start = || {
            options
                .n_trials
                .is_none_or(|n| run.started.fetch_add(1, Ordering::SeqCst) < n)
        };
        match study.assign(&mut may_start) {
            Ok(Assignment::Trial(t)) => Ok(t),
            Ok(Assignment::Wait) => return Ok(wait()),
            Ok(Assignment::Capped) => {
                // Trials of this call still running may pause and be promoted, or finish a
                // synchronous rung: wait for them before giving up.
                let busy = !run
                    .running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_empty();
                return Ok(if busy { wait() } else { Next::Stop });
            }
            Ok(Assignment::Finished) => Err(Error::Stopped(
                "the scheduler has run every trial it planned".into(),
            )),
            Err(e) => Err(e),
        }
    } else {
        study.ask()
    };
    let mut trial = match asked {
        Ok(t) => t,
        Err(Error::Stopped(reason)) => {
            tracing::info!(study = study.name(), "study stopped: {reason}");
            return Ok(Next::Stop);
        }
        Err(e) => return Err(e),
    };
    let id = trial.frozen().id;
    run.running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id);
    let heartbeat = match study.inner.heartbeat {
        Some(h) => Some(HeartbeatThread::start(
            study.storage().clone(),
            id,
            h.interval,
        )?),
        None => None,
    };
    let result = catch_unwind(AssertUnwindSafe(|| objective.evaluate(&mut trial)));
    drop(heartbeat);
    let mut uncaught = None;
    let outcome = match result {
        Ok(Ok(values)) => Some(Outcome::Values(values)),
        Ok(Err(TrialError::Pruned)) => Some(Outcome::Pruned),
        Ok(Err(TrialError::Paused)) if trial.is_paused() => None,
        Ok(Err(TrialError::Paused)) => {
            let e = "the objective returned TrialError::Paused but the scheduler did not pause \
                     the trial; return the error of report_scheduled as it is";
            uncaught = Some(e.to_owned());
            Some(Outcome::Failed(e.to_owned()))
        }
        Ok(Err(TrialError::Failed(e))) => {
            if !options.catch.catches(e.as_ref()) {
                uncaught = Some(e.to_string());
            }
            Some(Outcome::Failed(e.to_string()))
        }
        Err(payload) => {
            let e = PanicError(panic_message(payload.as_ref()));
            if !options.catch.catches(&e) {
                uncaught = Some(e.to_string());
            }
            Some(Outcome::Failed(e.to_string()))
        }
    };
    let number = trial.number();
    let finished = match outcome {
        Some(outcome) => study.end(&trial, outcome).map(Some),
        None => study.tell_paused(trial).map(|()| None),
    };
    run.running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    let Some(finished) = finished? else {
        return Ok(Next::Continue);
    };
    log_trial(study, &finished);
    if finished.state == TrialState::Fail && study.inner.retry.is_some_and(|r| r.retry_failed) {
        study.retry_trial(&finished)?;
    }
    for cb in &options.callbacks {
        cb(study, &finished);
    }
    match uncaught {
        Some(message) => Err(Error::ObjectiveFailed { number, message }),
        None => Ok(Next::Continue),
    }
}

/// Nothing to run now: nap, then ask again.
fn wait() -> Next {
    std::thread::sleep(Duration::from_millis(5));
    Next::Continue
}

fn log_trial(study: &Study, t: &FrozenTrial) {
    if !tracing::enabled!(tracing::Level::INFO) {
        return;
    }
    let params = serde_json::to_string(&t.params).unwrap_or_default();
    match t.state {
        TrialState::Complete => {
            let best = if study.directions().len() == 1 {
                study
                    .best_trial()
                    .map(|b| format!("; best is trial {} with value {:?}", b.number, b.value()))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            tracing::info!(
                "trial {} finished with values {:?} and parameters {params}{best}",
                t.number,
                t.values.as_deref().unwrap_or(&[])
            );
        }
        TrialState::Pruned => tracing::info!("trial {} pruned with parameters {params}", t.number),
        _ => tracing::warn!(
            "trial {} failed with parameters {params}: {}",
            t.number,
            t.fail_reason.as_deref().unwrap_or("unknown reason")
        ),
    }
}
