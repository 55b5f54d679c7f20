//! Studies: an optimization task, its trials, and the ask/tell/optimize loop around them.

mod builder;
mod direction;
#[cfg(feature = "signal")]
mod interrupt;
mod liveness;
mod optimize;
pub(crate) mod scheduled;
mod view;

pub use builder::{CheckpointConfig, StudyBuilder, StudyConfig, DEFAULT_KEEP_CHECKPOINTS};
pub use direction::{dominates, pareto_front, Direction};
pub use liveness::{Heartbeat, RetryPolicy, FAILED_TRIAL_ATTR, RETRY_HISTORY_ATTR};
pub use optimize::{Callback, Catch, CatchPredicate, Optimize, PanicError};
pub use scheduled::{
    BRACKET_ATTR, CHECKPOINT_ATTR, CHECKPOINT_REFS_ATTR, PARENT_ATTR, REPLACED_BY_ATTR,
    RESUME_FROM_ATTR, SCHEDULER_STATE_ATTR,
};
pub use view::{StopSignal, StudyView, TrialFilter};

use crate::error::{Error, Result};
use crate::pruner::{Pruner, PrunerSpec};
use crate::sampler::{Sampler, SamplerSpec};
use crate::schedule::checkpoint::CheckpointStore;
use crate::space::ParamValue;
use crate::storage::{Storage, StudyId};
use crate::trial::{check_values, FrozenTrial, Params, SharedSpecs, Trial, TrialId, TrialState};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// System attribute of an enqueued trial holding its fixed parameters (public so that tools
/// re-queuing trials outside the library, such as the CLI runner, agree with it).
pub const FIXED_PARAMS_ATTR: &str = "fixed_params";

/// An optimization task: a name, one or more directions, a sampler and a pruner, and the
/// trials in storage.
///
/// `Study` is a cheap handle (`Clone` shares it), usable from many threads at once. Build one
/// with [`Study::builder`]; reopen one, with its stored configuration, with [`Study::load`].
#[derive(Clone)]
pub struct Study {
    inner: Arc<StudyInner>,
}

pub(crate) struct StudyInner {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) id: StudyId,
    pub(crate) name: String,
    pub(crate) directions: Vec<Direction>,
    pub(crate) config: StudyConfig,
    pub(crate) sampler: Arc<dyn Sampler>,
    pub(crate) pruner: Arc<dyn Pruner>,
    pub(crate) max_trials: Option<u64>,
    pub(crate) stop: StopSignal,
    /// Parameter names and distributions the study's trials share.
    pub(crate) specs: SharedSpecs,
    /// Heartbeats of running trials, when enabled.
    pub(crate) heartbeat: Option<Heartbeat>,
    /// Which failed trials are retried.
    pub(crate) retry: Option<RetryPolicy>,
    /// Where checkpoints are saved, and how many unreferenced ones are kept.
    pub(crate) checkpoints: Option<(CheckpointStore, usize)>,
    /// The steps at which the scheduler may decide something (see
    /// [`SchedulerSpec::decision_steps`](crate::schedule::SchedulerSpec::decision_steps)).
    pub(crate) decision_steps: crate::schedule::DecisionSteps,
    /// The scheduler state this process last read or wrote.
    pub(crate) scheduler_cache: scheduled::AttrCache<scheduled::SchedulerState>,
    /// The checkpoint reference counts this process last read or wrote.
    pub(crate) refs_cache: scheduled::AttrCache<crate::schedule::checkpoint::CheckpointRefs>,
    /// Whether the "more referenced checkpoints than keep_checkpoints" warning was given.
    pub(crate) refs_warned: std::sync::atomic::AtomicBool,
    /// Trial ids by number, learned on lookups (a number never changes).
    pub(crate) ids: std::sync::Mutex<std::collections::HashMap<u64, TrialId>>,
}

impl std::fmt::Debug for Study {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Study")
            .field("name", &self.inner.name)
            .field("directions", &self.inner.directions)
            .field("config", &self.inner.config)
            .finish()
    }
}

/// How a trial ended, as told to the study.
#[derive(Debug)]
pub(crate) enum Outcome {
    Values(Vec<f64>),
    Pruned,
    Failed(String),
}

/// The best feasible trial among `trials` for one direction.
pub(crate) fn best_of<'a>(
    trials: impl Iterator<Item = &'a FrozenTrial>,
    direction: Direction,
) -> Option<&'a FrozenTrial> {
    trials
        .filter(|t| t.is_feasible())
        .filter(|t| t.value().is_some())
        .reduce(|best, t| match (t.value(), best.value()) {
            (Some(v), Some(b)) if direction.better(v, b) => t,
            _ => best,
        })
}

impl Study {
    /// Starts building a study.
    pub fn builder() -> StudyBuilder {
        StudyBuilder::default()
    }

    /// Reopens an existing study with the configuration stored with it.
    pub fn load(storage: Arc<dyn Storage>, name: &str) -> Result<Study> {
        StudyBuilder::default()
            .storage(storage)
            .name(name)
            .load_only()
            .build()
    }

    /// The study's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    /// The study's id in storage.
    pub fn id(&self) -> StudyId {
        self.inner.id
    }
    /// One direction per objective.
    pub fn directions(&self) -> &[Direction] {
        &self.inner.directions
    }
    /// The study seed.
    pub fn seed(&self) -> u64 {
        self.inner.config.seed
    }
    /// The stored configuration (sampler, pruner, seed, version).
    pub fn config(&self) -> &StudyConfig {
        &self.inner.config
    }
    /// The storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }
    /// The sampler spec.
    pub fn sampler_spec(&self) -> &SamplerSpec {
        &self.inner.config.sampler
    }
    /// The pruner spec.
    pub fn pruner_spec(&self) -> &PrunerSpec {
        &self.inner.config.pruner
    }

    /// A read-only view of the study, as samplers and pruners get it.
    pub fn view(&self) -> StudyView<'_> {
        let i = &*self.inner;
        StudyView::new(
            &*i.storage,
            i.id,
            &i.name,
            &i.directions,
            i.config.seed,
            &i.stop,
        )
    }

    pub(crate) fn inner(&self) -> &StudyInner {
        &self.inner
    }

    /// Asks the study to stop before its next trial (from a callback or another thread).
    pub fn stop(&self) {
        self.inner.stop.stop("stop() was called");
    }

    /// Whether the study was asked to stop.
    pub fn is_stopped(&self) -> bool {
        self.inner.stop.is_stopped()
    }

    /// Starts a trial: claims an enqueued (Waiting) trial when there is one, otherwise creates
    /// a new one (within `max_trials`). Errors with [`Error::Stopped`] when the study is
    /// stopped, the trial cap is reached, or the sampler has nothing left to propose.
    ///
    /// With a scheduler the trial is whatever the scheduler assigns: a new configuration, a
    /// paused trial to resume ([`Trial::resume_from`]) or a PBT child; while it has nothing
    /// to run (a synchronous rung is still running elsewhere) this waits. Use
    /// [`try_ask`](Self::try_ask) not to wait.
    pub fn ask(&self) -> Result<Trial<'_>> {
        if !self.has_scheduler() {
            return self.ask_plain(false);
        }
        let mut nap = std::time::Duration::from_millis(1);
        loop {
            if let Some(trial) = self.try_ask()? {
                return Ok(trial);
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(std::time::Duration::from_millis(200));
        }
    }

    /// Like [`ask`](Self::ask), but returns `Ok(None)` instead of waiting when the scheduler
    /// has nothing to run right now (ask again later). Errors with [`Error::Stopped`] when
    /// the scheduler has finished (PBT's population is complete).
    pub fn try_ask(&self) -> Result<Option<Trial<'_>>> {
        if !self.has_scheduler() {
            return self.ask_plain(false).map(Some);
        }
        match self.assign(&mut || true)? {
            scheduled::Assignment::Trial(t) => Ok(Some(t)),
            scheduled::Assignment::Wait => Ok(None),
            scheduled::Assignment::Finished | scheduled::Assignment::Capped => Err(Error::Stopped(
                "the scheduler has run every trial it planned".into(),
            )),
        }
    }

    /// Claims the lowest-numbered Waiting trial, skipping PBT children when `skip_children`.
    fn claim_waiting(&self, skip_children: bool) -> Result<Option<Arc<FrozenTrial>>> {
        let i = &*self.inner;
        if !skip_children {
            return i.storage.claim_waiting_trial(i.id);
        }
        self.claim_waiting_where(|t| !t.system_attrs.contains_key(scheduled::RESUME_FROM_ATTR))
    }

    /// Claims the lowest-numbered Waiting trial that `wanted` accepts (Waiting → Running by
    /// compare-and-set); returns its record as claimed.
    pub(crate) fn claim_waiting_where(
        &self,
        wanted: impl Fn(&FrozenTrial) -> bool,
    ) -> Result<Option<Arc<FrozenTrial>>> {
        let i = &*self.inner;
        for t in i.storage.trials(i.id, Some(&[TrialState::Waiting]))? {
            if wanted(&t)
                && i.storage.set_trial_state(
                    t.id,
                    TrialState::Waiting,
                    TrialState::Running,
                    None,
                    None,
                )?
            {
                return Ok(Some(i.storage.trial(t.id)?));
            }
        }
        Ok(None)
    }

    /// A new trial (or an enqueued one), without asking a scheduler.
    pub(crate) fn ask_plain(&self, skip_children: bool) -> Result<Trial<'_>> {
        let i = &*self.inner;
        if let Some(reason) = i.stop.is_stopped().then(|| i.stop.reason()).flatten() {
            return Err(Error::Stopped(reason));
        }
        let frozen = match self.claim_waiting(skip_children)? {
            Some(t) => (*t).clone(),
            None => {
                if i.sampler.exhausted(&self.view())? {
                    i.stop.stop("the sampler has no configuration left");
                    return Err(Error::Stopped(
                        "the sampler has no configuration left".into(),
                    ));
                }
                match i.storage.create_trial(i.id, i.max_trials)? {
                    Some(t) => t,
                    None => {
                        let max = i.max_trials.unwrap_or_default();
                        let reason = format!("the study holds max_trials = {max} trials");
                        i.stop.stop(&reason);
                        return Err(Error::Stopped(reason));
                    }
                }
            }
        };
        let wrote = match i.sampler.before_trial(&self.view(), &frozen) {
            Ok(wrote) => wrote,
            Err(e) => {
                let reason = format!("sampler failed before the trial: {e}");
                i.storage.set_trial_state(
                    frozen.id,
                    TrialState::Running,
                    TrialState::Fail,
                    None,
                    Some(&reason),
                )?;
                return Err(e);
            }
        };
        // The sampler wrote to the trial (e.g. its grid point): read it back.
        let frozen = if wrote {
            (*i.storage.trial(frozen.id)?).clone()
        } else {
            frozen
        };
        Ok(Trial::new(self, frozen))
    }

    /// Finishes a trial as Complete with its objective values. A NaN value, or the wrong
    /// number of values, marks the trial Fail with that reason instead (±∞ are valid values).
    pub fn tell(
        &self,
        trial: Trial<'_>,
        values: impl crate::IntoValues,
    ) -> Result<Arc<FrozenTrial>> {
        self.end(&trial, Outcome::Values(values.into_values()))
    }

    /// Finishes a trial as Pruned (its last intermediate value becomes its value).
    pub fn tell_pruned(&self, trial: Trial<'_>) -> Result<Arc<FrozenTrial>> {
        self.end(&trial, Outcome::Pruned)
    }

    /// Finishes a trial as Fail with a reason.
    pub fn tell_failed(&self, trial: Trial<'_>, reason: &str) -> Result<Arc<FrozenTrial>> {
        self.end(&trial, Outcome::Failed(reason.to_owned()))
    }

    /// Parks a trial the scheduler paused ([`Trial::report_scheduled`] returned
    /// [`TrialError::Paused`](crate::TrialError::Paused)): it becomes Paused, and a worker
    /// resumes it from its checkpoint when the scheduler promotes it.
    pub fn tell_paused(&self, trial: Trial<'_>) -> Result<()> {
        if !trial.is_paused() {
            return Err(Error::invalid_argument(
                "trial",
                format!(
                    "trial #{} was not paused by the scheduler; only a trial whose \
                     report_scheduled returned TrialError::Paused can be parked",
                    trial.number()
                ),
            ));
        }
        self.finish_scheduled(&trial, None).map(|_| ())
    }

    /// Ends a trial as `outcome`, keeping a scheduler (if any) in step.
    pub(crate) fn end(&self, trial: &Trial<'_>, outcome: Outcome) -> Result<Arc<FrozenTrial>> {
        if !self.has_scheduler() {
            return self.finish(trial.frozen(), outcome);
        }
        self.finish_scheduled(trial, Some(outcome))?
            .ok_or_else(|| Error::Storage("a finished trial has no record".into()))
    }

    /// Finishes the Running trial with this number (from another process, say), as
    /// Complete with `values`. Errors when it is not Running.
    pub fn tell_number(
        &self,
        number: u64,
        values: impl crate::IntoValues,
    ) -> Result<Arc<FrozenTrial>> {
        let trial = self.trial_by_number(number)?;
        self.finish(&trial, Outcome::Values(values.into_values()))
    }

    /// Finishes the Running trial with this number as Pruned (its last full, NaN-free
    /// intermediate value becomes its value), from a process other than the one that asked
    /// for it. Errors when it is not Running.
    pub fn tell_number_pruned(&self, number: u64) -> Result<Arc<FrozenTrial>> {
        let trial = self.trial_by_number(number)?;
        self.finish(&trial, Outcome::Pruned)
    }

    /// Finishes the Running trial with this number as Fail with a reason, from a process
    /// other than the one that asked for it. Errors when it is not Running.
    pub fn tell_number_failed(&self, number: u64, reason: &str) -> Result<Arc<FrozenTrial>> {
        let trial = self.trial_by_number(number)?;
        self.finish(&trial, Outcome::Failed(reason.to_owned()))
    }

    /// The trial with this number.
    pub fn trial_by_number(&self, number: u64) -> Result<Arc<FrozenTrial>> {
        let cached = self.id_cache().get(&number).copied();
        if let Some(id) = cached {
            return self.inner.storage.trial(id);
        }
        // A trial's number never changes: learn every id once, then read one trial.
        let trials = self.trials()?;
        let found = trials.iter().find(|t| t.number == number).cloned();
        self.id_cache()
            .extend(trials.iter().map(|t| (t.number, t.id)));
        found.ok_or_else(|| Error::TrialNotFound(format!("#{number} in study `{}`", self.name())))
    }

    fn id_cache(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, TrialId>> {
        self.inner.ids.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn finish(
        &self,
        frozen: &FrozenTrial,
        outcome: Outcome,
    ) -> Result<Arc<FrozenTrial>> {
        let i = &*self.inner;
        let n = i.directions.len();
        let (state, values, reason) = match outcome {
            Outcome::Values(v) => match check_values(&v, n) {
                Ok(()) => (TrialState::Complete, Some(v), None),
                Err(e) => {
                    tracing::warn!(trial = frozen.number, "trial failed: {e}");
                    (TrialState::Fail, None, Some(e.to_string()))
                }
            },
            Outcome::Pruned => {
                let last = frozen
                    .intermediate_values
                    .values()
                    .next_back()
                    .filter(|v| v.len() == n && v.iter().all(|x| !x.is_nan()))
                    .cloned();
                (TrialState::Pruned, last, None)
            }
            Outcome::Failed(reason) => (TrialState::Fail, None, Some(reason)),
        };
        let hook = i
            .sampler
            .after_trial(&self.view(), frozen, state, values.as_deref());
        let won = i.storage.set_trial_state(
            frozen.id,
            TrialState::Running,
            state,
            values.as_deref(),
            reason.as_deref(),
        )?;
        if !won {
            let current = i.storage.trial(frozen.id)?;
            return Err(Error::TrialFinished {
                number: current.number,
                state: current.state,
            });
        }
        hook?;
        // The final record as this worker wrote it, built here rather than read back: a
        // database storage saves a round trip per trial. (Times are this machine's clock; the
        // stored completion time is the storage's.)
        let mut done = frozen.clone();
        done.state = state;
        done.values = values;
        done.fail_reason = reason;
        done.datetime_complete = Some(std::time::SystemTime::now());
        Ok(Arc::new(done))
    }

    /// Adds a trial to run first: its `params` are used as given and the rest are sampled.
    /// Values are checked against the distributions when the objective suggests them.
    pub fn enqueue_trial<I, K, V>(&self, params: I) -> Result<Arc<FrozenTrial>>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<ParamValue>,
    {
        let fixed: BTreeMap<String, ParamValue> = params
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let mut template = FrozenTrial::new_running(crate::trial::TrialId(0), 0);
        template.state = TrialState::Waiting;
        template.datetime_start = None;
        template
            .system_attrs
            .insert(FIXED_PARAMS_ATTR.into(), serde_json::to_value(&fixed)?);
        self.inner
            .storage
            .add_trial(self.inner.id, &template)
            .map(Arc::new)
    }

    /// Inserts a finished trial (Complete, Pruned or Fail), e.g. to warm-start from earlier
    /// results. The record is validated against the study's number of objectives.
    pub fn add_trial(&self, trial: &FrozenTrial) -> Result<Arc<FrozenTrial>> {
        if !trial.state.is_finished() {
            return Err(Error::invalid_argument(
                "trial",
                format!(
                    "add_trial takes finished trials, got a {} one; use enqueue_trial to queue parameters",
                    trial.state
                ),
            ));
        }
        trial.validate(self.inner.directions.len())?;
        self.inner
            .storage
            .add_trial(self.inner.id, trial)
            .map(Arc::new)
    }

    /// Inserts several finished trials.
    pub fn add_trials<'a>(&self, trials: impl IntoIterator<Item = &'a FrozenTrial>) -> Result<()> {
        for t in trials {
            self.add_trial(t)?;
        }
        Ok(())
    }

    /// All trials, in number order.
    pub fn trials(&self) -> Result<Vec<Arc<FrozenTrial>>> {
        self.inner.storage.trials(self.inner.id, None)
    }

    /// The trials in one of `states`, in number order.
    pub fn trials_in(&self, states: &[TrialState]) -> Result<Vec<Arc<FrozenTrial>>> {
        self.inner.storage.trials(self.inner.id, Some(states))
    }

    fn require_single_objective(&self, what: &str) -> Result<()> {
        if self.inner.directions.len() == 1 {
            Ok(())
        } else {
            Err(Error::Unsupported(format!(
                "{what} is defined for one objective, but the study has {}; use best_trials() \
                 for the Pareto front",
                self.inner.directions.len()
            )))
        }
    }

    /// The best feasible Complete trial of a single-objective study.
    pub fn best_trial(&self) -> Result<Arc<FrozenTrial>> {
        self.require_single_objective("best_trial")?;
        let complete = self.trials_in(&[TrialState::Complete])?;
        let best = best_of(
            complete.iter().map(|t| t.as_ref()),
            self.inner.directions[0],
        )
        .map(|b| b.id);
        match best {
            Some(id) => self.inner.storage.trial(id),
            None if complete.is_empty() => Err(Error::NoCompletedTrial("")),
            None => Err(Error::NoCompletedTrial(
                " that satisfies its constraints (every constraint value must be <= 0)",
            )),
        }
    }

    /// The best value of a single-objective study.
    pub fn best_value(&self) -> Result<f64> {
        self.best_trial()?
            .value()
            .ok_or(Error::NoCompletedTrial(""))
    }

    /// The parameters of the best trial of a single-objective study.
    pub fn best_params(&self) -> Result<Params> {
        Ok(self.best_trial()?.params.clone())
    }

    /// The Pareto front: the feasible Complete trials no other feasible Complete trial
    /// dominates. For one objective, every trial sharing the best value.
    pub fn best_trials(&self) -> Result<Vec<Arc<FrozenTrial>>> {
        let feasible: Vec<Arc<FrozenTrial>> = self
            .trials_in(&[TrialState::Complete])?
            .into_iter()
            .filter(|t| t.is_feasible())
            .collect();
        let points: Vec<&[f64]> = feasible
            .iter()
            .map(|t| t.values.as_deref().unwrap_or(&[]))
            .collect();
        let front = pareto_front(&points, &self.inner.directions);
        Ok(front.into_iter().map(|i| feasible[i].clone()).collect())
    }

    /// Sets a user attribute of the study.
    pub fn set_user_attr(&self, key: &str, value: impl serde::Serialize) -> Result<()> {
        let value: Value = serde_json::to_value(value)?;
        self.inner
            .storage
            .set_study_user_attr(self.inner.id, key, &value)
    }
}

#[cfg(test)]
mod tests;
