//! The study side of pause-and-resume scheduling: the scheduler's state in storage, a free
//! worker's request for work, a trial's report answered with a decision, checkpoints and
//! their reference counts, and PBT's child trials.
//!
//! # Storage
//! The scheduler is one of the pure state machines of [`crate::schedule`], kept as JSON text
//! (one JSON string) in the study system attribute [`SCHEDULER_STATE_ATTR`]. Every decision
//! (a free worker's request, a report at a rung or interval boundary) reads it, applies one
//! operation and writes it back with a compare-and-set
//! ([`Storage::compare_and_set_study_system_attr`]), retrying on conflict; the operations are
//! pure and their random draws are seeded by the study seed, the trial and the step, so a
//! retry recomputes the same answer. A study stopped halfway and started again, by the same
//! process or another, therefore continues the very same schedule. The checkpoint reference
//! counts live in [`CHECKPOINT_REFS_ATTR`] the same way.
//!
//! # Trial attributes
//! A trial that saved a checkpoint carries [`CHECKPOINT_ATTR`] (`{"trial": n, "step": s}`,
//! its latest); a trial that resumes from another trial's checkpoint (a PBT child) carries
//! [`RESUME_FROM_ATTR`] and [`PARENT_ATTR`] (the parent's number); the trial it replaced
//! carries [`REPLACED_BY_ATTR`]. Following [`PARENT_ATTR`] from a trial to the first
//! member gives its lineage: the schedule of hyperparameters that produced its model.

use super::{Direction, Outcome, Study};
use crate::error::{Error, Result};
use crate::rng::TrialRng;
use crate::schedule::checkpoint::{Checkpoint, CheckpointId, CheckpointRefs, CheckpointWriter};
use crate::schedule::pb2::{pb2_explore, Pb2Observation};
use crate::schedule::population::{PbtDecision, PbtScheduler};
use crate::schedule::spec::SchedulePlan;
use crate::schedule::{
    explore, explore_value, AshaScheduler, Decision, SchedulerSpec, SyncHyperbandScheduler,
    SyncShaScheduler, Work,
};
use crate::space::Distribution;
use crate::trial::{FrozenTrial, Params, Trial, TrialState};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Study system attribute holding the scheduler's state.
pub const SCHEDULER_STATE_ATTR: &str = "ferrotune:scheduler";
/// Study system attribute holding the checkpoints' reference counts.
pub const CHECKPOINT_REFS_ATTR: &str = "ferrotune:checkpoint_refs";
/// Trial system attribute: the trial's latest own checkpoint, `{"trial": n, "step": s}`.
pub const CHECKPOINT_ATTR: &str = "ferrotune:checkpoint";
/// Trial system attribute: the checkpoint a PBT child resumes from.
pub const RESUME_FROM_ATTR: &str = "ferrotune:resume_from";
/// Trial system attribute: the number of the trial whose checkpoint a PBT child continues.
pub const PARENT_ATTR: &str = "ferrotune:parent";
/// Trial system attribute: the number of the PBT child that took over this trial's slot.
pub const REPLACED_BY_ATTR: &str = "ferrotune:replaced_by";
/// Trial system attribute: Hyperband's bracket `s` the trial was started in.
pub const BRACKET_ATTR: &str = "ferrotune:bracket";

/// How long a worker waits for a promoted trial that is still saving its checkpoint.
const CLAIM_PATIENCE: Duration = Duration::from_secs(600);

/// The stored scheduler: one of the pure state machines. (Externally tagged: an internally
/// tagged enum buffers its content, and serde then cannot read the machines' integer map keys
/// back from JSON strings.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SchedulerState {
    Asha(AshaScheduler),
    SuccessiveHalving(SyncShaScheduler),
    Hyperband(SyncHyperbandScheduler),
    Population(PbtScheduler),
}

/// A scheduler's answer to a report, in one vocabulary for every scheduler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Verdict {
    Continue,
    Pause,
    Stop,
    Complete,
    Checkpoint { pause: bool },
    Exploit { winner: u64, step: u64 },
}

impl SchedulerState {
    /// The initial state of `spec`'s scheduler, or `None` without one.
    pub(crate) fn initial(spec: &SchedulerSpec, direction: Direction) -> Result<Option<Self>> {
        Ok(Some(match spec.plan()? {
            SchedulePlan::None => return Ok(None),
            SchedulePlan::Asha(plan) => SchedulerState::Asha(AshaScheduler::new(
                plan.max_resource(),
                plan.min_resource(),
                plan.eta(),
            )?),
            SchedulePlan::SuccessiveHalving {
                plan,
                max_concurrent_brackets,
            } => SchedulerState::SuccessiveHalving(
                SyncShaScheduler::new(plan)
                    .with_max_concurrent_brackets(max_concurrent_brackets)?,
            ),
            SchedulePlan::Hyperband {
                plan,
                max_concurrent_brackets,
            } => SchedulerState::Hyperband(
                SyncHyperbandScheduler::new(plan)
                    .with_max_concurrent_brackets(max_concurrent_brackets)?,
            ),
            SchedulePlan::Population {
                population_size,
                interval,
                max_step,
                config,
            } => SchedulerState::Population(PbtScheduler::new(
                population_size,
                interval,
                max_step,
                config,
                direction,
            )?),
        }))
    }

    fn next_work(&mut self) -> Result<Work> {
        match self {
            SchedulerState::Asha(s) => s.next_work(),
            SchedulerState::SuccessiveHalving(s) => s.next_work(),
            SchedulerState::Hyperband(s) => s.next_work(),
            SchedulerState::Population(s) => s.next_work(),
        }
    }

    fn on_start(&mut self, trial: u64) -> Result<()> {
        match self {
            SchedulerState::Asha(s) => s.on_start(trial),
            SchedulerState::SuccessiveHalving(s) => s.on_start(trial),
            SchedulerState::Hyperband(s) => s.on_start(trial),
            SchedulerState::Population(s) => s.on_start(trial),
        }
    }

    fn abandon_start(&mut self) -> Result<()> {
        match self {
            SchedulerState::Asha(s) => s.abandon_start(),
            SchedulerState::SuccessiveHalving(s) => s.abandon_start(),
            SchedulerState::Hyperband(s) => s.abandon_start(),
            SchedulerState::Population(s) => s.abandon_start(),
        }
    }

    fn on_failed(&mut self, trial: u64) -> Result<()> {
        match self {
            SchedulerState::Asha(s) => s.on_failed(trial),
            SchedulerState::SuccessiveHalving(s) => s.on_failed(trial),
            SchedulerState::Hyperband(s) => s.on_failed(trial),
            SchedulerState::Population(s) => s.on_failed(trial),
        }
    }

    /// `loss` is the value in "lower is better" form; `value` as reported.
    fn report(
        &mut self,
        trial: u64,
        step: u64,
        value: f64,
        loss: f64,
        rng: &mut TrialRng,
    ) -> Result<Verdict> {
        let decision = match self {
            SchedulerState::Asha(s) => s.report(trial, step, loss)?,
            SchedulerState::SuccessiveHalving(s) => s.report(trial, step, loss)?,
            SchedulerState::Hyperband(s) => s.report(trial, step, loss)?,
            SchedulerState::Population(s) => {
                return Ok(match s.report(trial, step, value, rng)? {
                    PbtDecision::Continue => Verdict::Continue,
                    PbtDecision::Checkpoint { pause } => Verdict::Checkpoint { pause },
                    PbtDecision::Exploit { winner, step } => Verdict::Exploit { winner, step },
                    PbtDecision::Complete => Verdict::Complete,
                })
            }
        };
        Ok(match decision {
            Decision::Continue => Verdict::Continue,
            Decision::Pause => Verdict::Pause,
            Decision::Stop => Verdict::Stop,
            Decision::Complete => Verdict::Complete,
        })
    }

    /// Paused trials a synchronous rung did not promote, to be stopped.
    fn take_stopped(&mut self) -> Vec<u64> {
        match self {
            SchedulerState::SuccessiveHalving(s) => s.take_stopped(),
            SchedulerState::Hyperband(s) => s.take_stopped(),
            SchedulerState::Asha(_) | SchedulerState::Population(_) => Vec::new(),
        }
    }
}

/// What a free worker got from [`Study::try_ask`]-like requests. (Short-lived and moved
/// once, so the large variant is not boxed.)
#[allow(clippy::large_enum_variant)]
pub(crate) enum Assignment<'s> {
    /// A trial to run: new, resumed, or a PBT child.
    Trial(Trial<'s>),
    /// Nothing to do now; ask again later.
    Wait,
    /// The scheduler has nothing left (PBT's population is complete).
    Finished,
    /// The scheduler wants a new configuration but the caller may not start one.
    Capped,
}

fn checkpoint_id(value: Option<&Value>) -> Option<CheckpointId> {
    value.and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// The last state this process read or wrote for a study attribute, with its JSON text: a
/// read that finds the same text reuses it instead of parsing again.
pub(crate) type AttrCache<S> = std::sync::Mutex<Option<(String, S)>>;

/// Applies `op` to the state stored (as JSON text) in study attribute `key` by compare-and-set,
/// retrying on conflict; `absent` gives the state when the attribute does not exist yet.
///
/// The state is stored as one JSON *string* rather than a JSON object: cloning, comparing and
/// writing one string costs a copy, where a tree of JSON values costs an allocation per node
/// — the difference between microseconds and milliseconds per call once a scheduler knows a
/// few thousand trials. `op` may run several times (on conflict) and must be a pure function
/// of the state.
fn update_attr<S, T>(
    study: &Study,
    key: &str,
    cache: &AttrCache<S>,
    absent: impl Fn() -> Result<S>,
    mut op: impl FnMut(&mut S) -> Result<T>,
) -> Result<T>
where
    S: Serialize + serde::de::DeserializeOwned + Clone,
{
    let i = &*study.inner;
    loop {
        let stored = i.storage.study_system_attr(i.id, key)?;
        let text = match &stored {
            None => None,
            Some(Value::String(text)) => Some(text.as_str()),
            Some(other) => {
                return Err(Error::Storage(format!(
                    "study `{}`: attribute `{key}` holds {}, not the JSON text of a state; \
                     restore an intact copy of the study",
                    i.name,
                    other.to_string().chars().take(60).collect::<String>()
                )))
            }
        };
        let mut state = match text {
            None => absent()?,
            Some(text) => {
                let cached = cache.lock().unwrap_or_else(|e| e.into_inner());
                match &*cached {
                    Some((t, s)) if t == text => s.clone(),
                    _ => serde_json::from_str(text).map_err(|e| {
                        Error::Storage(format!(
                            "study `{}`: the stored `{key}` cannot be read ({e}); it was \
                             damaged outside ferrotune — restore the database from a backup",
                            i.name
                        ))
                    })?,
                }
            }
        };
        let out = op(&mut state)?;
        let new = serde_json::to_string(&state)?;
        let unchanged = text == Some(new.as_str());
        if unchanged
            || i.storage.compare_and_set_study_system_attr(
                i.id,
                key,
                stored.as_ref(),
                &Value::String(new.clone()),
            )?
        {
            *cache.lock().unwrap_or_else(|e| e.into_inner()) = Some((new, state));
            return Ok(out);
        }
    }
}

impl Study {
    /// Whether the study runs a pause-and-resume scheduler.
    pub fn has_scheduler(&self) -> bool {
        !self.inner.config.scheduler.is_none()
    }

    /// Applies `op` to the stored scheduler state by compare-and-set, retrying on conflict,
    /// then stops the paused trials a synchronous rung did not promote.
    fn with_scheduler<T>(&self, mut op: impl FnMut(&mut SchedulerState) -> Result<T>) -> Result<T> {
        let i = &*self.inner;
        let missing = || {
            Error::Storage(format!(
                "study `{}` has a scheduler but no stored scheduler state (attribute \
                 `{SCHEDULER_STATE_ATTR}`); was it created by an older ferrotune?",
                i.name
            ))
        };
        let (out, stopped) = update_attr(
            self,
            SCHEDULER_STATE_ATTR,
            &i.scheduler_cache,
            || Err(missing()),
            |state: &mut SchedulerState| {
                let out = op(state)?;
                Ok((out, state.take_stopped()))
            },
        )?;
        for number in stopped {
            self.stop_paused(number)?;
        }
        Ok(out)
    }

    /// Updates the checkpoint reference counts by compare-and-set, then deletes the
    /// unreferenced checkpoints beyond `keep_checkpoints`.
    fn with_refs(&self, mut op: impl FnMut(&mut CheckpointRefs)) -> Result<()> {
        let i = &*self.inner;
        let Some((store, keep)) = &i.checkpoints else {
            return Ok(());
        };
        let (gone, referenced) = update_attr(
            self,
            CHECKPOINT_REFS_ATTR,
            &i.refs_cache,
            || Ok(CheckpointRefs::default()),
            |refs: &mut CheckpointRefs| {
                op(refs);
                Ok((refs.collect_garbage(*keep), refs.referenced()))
            },
        )?;
        // Once per study handle: with ASHA every paused trial holds its checkpoint, so this
        // stays true for the rest of the run.
        if referenced > *keep
            && !i
                .refs_warned
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                study = %i.name,
                referenced,
                keep,
                "more checkpoints are still needed than keep_checkpoints allows; none of them \
                 can be deleted (raise keep_checkpoints to silence this)"
            );
        }
        for id in gone {
            store.remove(id)?;
        }
        Ok(())
    }

    /// Moves the paused trial `number` from Paused to `to` (with `values`) by
    /// compare-and-set and returns its record, or `None` when it ended some other way.
    ///
    /// The scheduler may decide about a trial the moment it reported, while its worker is still
    /// saving the checkpoint (the trial stays Running until then): wait for it to become
    /// Paused, up to [`CLAIM_PATIENCE`].
    fn take_paused(
        &self,
        number: u64,
        to: TrialState,
        values: impl Fn(&FrozenTrial) -> Option<Vec<f64>>,
    ) -> Result<Option<Arc<FrozenTrial>>> {
        let deadline = std::time::Instant::now() + CLAIM_PATIENCE;
        let mut nap = Duration::from_millis(1);
        loop {
            let trial = self.trial_by_number(number)?;
            match trial.state {
                TrialState::Paused => {
                    let values = values(&trial);
                    if self.inner.storage.set_trial_state(
                        trial.id,
                        TrialState::Paused,
                        to,
                        values.as_deref(),
                        None,
                    )? {
                        return Ok(Some(trial));
                    }
                }
                TrialState::Running if std::time::Instant::now() < deadline => {
                    // Its worker may have died while saving: reap it (with heartbeats on)
                    // rather than wait the whole patience out.
                    self.fail_stale_trials()?;
                }
                _ => return Ok(None),
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(100));
        }
    }

    /// A paused trial that a synchronous rung did not promote: Paused → Pruned with its last
    /// value; its checkpoint is released.
    fn stop_paused(&self, number: u64) -> Result<()> {
        let last = |t: &FrozenTrial| t.intermediate_values.values().next_back().cloned();
        if let Some(trial) = self.take_paused(number, TrialState::Pruned, last)? {
            if let Some(own) = checkpoint_id(trial.system_attrs.get(CHECKPOINT_ATTR)) {
                self.with_refs(|r| r.release(own))?;
            }
        }
        Ok(())
    }

    /// A free worker's request for work, without blocking. `may_start` is asked before a new
    /// configuration is started (a trial budget); resumed trials and PBT children need no
    /// permission.
    ///
    /// With heartbeats on, the trial handed out gets its first heartbeat at once: a worker
    /// that dies before its own heartbeat starts leaves a trial the next worker reaps, not
    /// one Running for ever (and, for a synchronous rung, a reserved start that never fills).
    pub(crate) fn assign(&self, may_start: &mut dyn FnMut() -> bool) -> Result<Assignment<'_>> {
        let assignment = self.assign_work(may_start)?;
        if let (Assignment::Trial(t), Some(_)) = (&assignment, self.inner.heartbeat) {
            self.inner.storage.record_heartbeat(t.frozen().id)?;
        }
        Ok(assignment)
    }

    fn assign_work(&self, may_start: &mut dyn FnMut() -> bool) -> Result<Assignment<'_>> {
        let i = &*self.inner;
        if let Some(reason) = i.stop.is_stopped().then(|| i.stop.reason()).flatten() {
            return Err(Error::Stopped(reason));
        }
        // PBT children wait for any free worker first.
        if i.config.scheduler.is_population() {
            if let Some(child) = self.claim_child()? {
                return Ok(Assignment::Trial(child));
            }
        }
        let work = self.with_scheduler(|s| s.next_work())?;
        match work {
            Work::Wait => Ok(Assignment::Wait),
            Work::Finished => Ok(Assignment::Finished),
            Work::Start { bracket } => {
                if !may_start() {
                    self.with_scheduler(|s| s.abandon_start())?;
                    return Ok(Assignment::Capped);
                }
                let mut trial = match self.ask_plain(true) {
                    Ok(t) => t,
                    Err(e) => {
                        self.with_scheduler(|s| s.abandon_start())?;
                        return Err(e);
                    }
                };
                let number = trial.number();
                self.with_scheduler(|s| s.on_start(number))?;
                if let Some(s) = bracket {
                    trial.set_system_attr(BRACKET_ATTR, Value::from(s))?;
                }
                Ok(Assignment::Trial(trial))
            }
            Work::Resume { trial, .. } => match self.claim_paused(trial)? {
                Some(t) => Ok(Assignment::Trial(t)),
                None => Ok(Assignment::Wait),
            },
        }
    }

    /// Claims the Paused trial `number` that the scheduler promoted (Paused → Running), with
    /// its own checkpoint to resume from. A trial that ended meanwhile (its worker died) is
    /// reported failed to the scheduler.
    fn claim_paused(&self, number: u64) -> Result<Option<Trial<'_>>> {
        let Some(paused) = self.take_paused(number, TrialState::Running, |_| None)? else {
            tracing::warn!(
                study = %self.inner.name,
                trial = number,
                "a promoted trial cannot be resumed (it is no longer paused); counting it as failed"
            );
            self.with_scheduler(|s| s.on_failed(number))?;
            return Ok(None);
        };
        let frozen = (*self.inner.storage.trial(paused.id)?).clone();
        let resume = checkpoint_id(frozen.system_attrs.get(CHECKPOINT_ATTR));
        let mut trial = Trial::new(self, frozen);
        if let Some(id) = resume {
            trial.set_resume(self.open_checkpoint(id)?, false);
        }
        Ok(Some(trial))
    }

    /// Claims a Waiting PBT child (one carrying [`RESUME_FROM_ATTR`]) that the scheduler has
    /// registered as a member: a child is stored before its worker tells the scheduler about
    /// it, and must not run before (nor ever, if that worker died in between).
    fn claim_child(&self) -> Result<Option<Trial<'_>>> {
        let i = &*self.inner;
        let waiting = i.storage.trials(i.id, Some(&[TrialState::Waiting]))?;
        if !waiting
            .iter()
            .any(|t| t.system_attrs.contains_key(RESUME_FROM_ATTR))
        {
            return Ok(None);
        }
        // A read-only pass over the state (an operation that changes nothing writes nothing).
        let members: std::collections::BTreeSet<u64> = self.with_scheduler(|s| {
            Ok(match s {
                SchedulerState::Population(p) => {
                    p.members().into_iter().map(|(trial, _)| trial).collect()
                }
                _ => Default::default(),
            })
        })?;
        let child = self.claim_waiting_where(|t| {
            t.system_attrs.contains_key(RESUME_FROM_ATTR) && members.contains(&t.number)
        })?;
        let Some(child) = child else {
            return Ok(None);
        };
        let from = checkpoint_id(child.system_attrs.get(RESUME_FROM_ATTR)).ok_or_else(|| {
            Error::Storage(format!(
                "PBT child #{} has an unreadable `{RESUME_FROM_ATTR}` attribute",
                child.number
            ))
        })?;
        let mut trial = Trial::new(self, (*child).clone());
        trial.set_resume(self.open_checkpoint(from)?, true);
        Ok(Some(trial))
    }

    fn open_checkpoint(&self, id: CheckpointId) -> Result<Checkpoint> {
        match &self.inner.checkpoints {
            Some((store, _)) => store.open(id),
            None => Err(Error::Checkpoint(
                "the study has no checkpoint directory; give one with \
                 StudyBuilder::checkpoint_dir"
                    .into(),
            )),
        }
    }

    /// The scheduler's answer to `trial`'s report of `value` at `step`.
    pub(crate) fn scheduler_report(&self, trial: u64, step: u64, value: f64) -> Result<Verdict> {
        let loss = self.directions()[0].to_loss(value);
        let seed = self.seed();
        self.with_scheduler(|s| {
            let mut rng = TrialRng::for_trial(seed, trial, &format!("pbt-exploit-{step}"));
            s.report(trial, step, value, loss, &mut rng)
        })
    }

    /// Saves `trial`'s checkpoint at `step` and moves its references: the new checkpoint is
    /// held, the trial's previous one (and, for a PBT child, its parent's) released.
    pub(crate) fn save_checkpoint<E: std::fmt::Display>(
        &self,
        trial: &FrozenTrial,
        holds_parent: Option<CheckpointId>,
        step: u64,
        write: impl FnOnce(&CheckpointWriter<'_>) -> std::result::Result<(), E>,
    ) -> Result<CheckpointId> {
        let (store, _) = self.inner.checkpoints.as_ref().ok_or_else(|| {
            Error::Checkpoint(
                "the scheduler asked for a checkpoint but the study has no checkpoint \
                 directory; give one with StudyBuilder::checkpoint_dir"
                    .into(),
            )
        })?;
        let id = CheckpointId {
            trial: trial.number,
            step,
        };
        store.save(id, write)?;
        let previous = checkpoint_id(trial.system_attrs.get(CHECKPOINT_ATTR));
        self.with_refs(|r| {
            r.acquire(id);
            if let Some(p) = previous.filter(|p| *p != id) {
                r.release(p);
            }
            if let Some(parent) = holds_parent {
                r.release(parent);
            }
        })?;
        self.inner.storage.set_trial_system_attr(
            trial.id,
            CHECKPOINT_ATTR,
            &serde_json::to_value(id)?,
        )?;
        Ok(id)
    }

    /// Tells the scheduler that `trial` saved its checkpoint at `step` (PBT: only now may
    /// another member copy it).
    pub(crate) fn scheduler_saved(&self, trial: u64, step: u64) -> Result<()> {
        self.with_scheduler(|s| match s {
            SchedulerState::Population(p) => p.on_saved(trial, step),
            _ => Ok(()),
        })
    }

    /// Releases the checkpoints a finished trial held and, unless the scheduler already
    /// knows how it ended, tells the scheduler it failed.
    pub(crate) fn scheduler_trial_ended(
        &self,
        trial: &FrozenTrial,
        holds_parent: Option<CheckpointId>,
        scheduler_knows: bool,
    ) -> Result<()> {
        if !scheduler_knows {
            let number = trial.number;
            // A trial the scheduler never registered was created for a start its worker
            // reserved and died before telling the scheduler about: it takes that reserved
            // start and fails there, so a synchronous rung is not left waiting for it.
            let failed = self.with_scheduler(|s| match s.on_failed(number) {
                Ok(()) => Ok(()),
                Err(_) => {
                    s.on_start(number)?;
                    s.on_failed(number)
                }
            });
            match failed {
                // Already counted, or no start was reserved for it: nothing to undo.
                Err(Error::InvalidArgument { reason, .. }) => {
                    tracing::debug!(trial = number, "the scheduler ignores its end: {reason}");
                }
                other => other?,
            }
        }
        // A completed PBT member stays copyable; everything else lets its checkpoint go.
        let keep_own =
            self.inner.config.scheduler.is_population() && trial.state == TrialState::Complete;
        let own = checkpoint_id(trial.system_attrs.get(CHECKPOINT_ATTR)).filter(|_| !keep_own);
        if own.is_some() || holds_parent.is_some() {
            self.with_refs(|r| {
                own.into_iter()
                    .chain(holds_parent)
                    .for_each(|c| r.release(c));
            })?;
        }
        Ok(())
    }

    /// PBT's exploit: `loser` stops at `step`; a new Waiting trial continues from `winner`'s
    /// checkpoint at `winner_step` with parameters explored from the winner's. Returns the
    /// child's number.
    pub(crate) fn spawn_child(
        &self,
        loser: &FrozenTrial,
        winner: u64,
        winner_step: u64,
    ) -> Result<u64> {
        let parent = self.trial_by_number(winner)?;
        let from = CheckpointId {
            trial: winner,
            step: winner_step,
        };
        let params = self.explore_params(loser.number, &parent, winner_step)?;
        let mut template = FrozenTrial::new_running(crate::trial::TrialId(0), 0);
        template.state = TrialState::Waiting;
        template.datetime_start = None;
        template.params = params;
        template
            .system_attrs
            .insert(RESUME_FROM_ATTR.into(), serde_json::to_value(from)?);
        template
            .system_attrs
            .insert(PARENT_ATTR.into(), Value::from(winner));
        self.with_refs(|r| r.acquire(from))?;
        let child = self.inner.storage.add_trial(self.inner.id, &template)?;
        let (loser_number, child_number) = (loser.number, child.number);
        self.with_scheduler(|s| match s {
            SchedulerState::Population(p) => p.on_child(loser_number, child_number, winner_step),
            _ => Err(Error::invalid_argument(
                "scheduler",
                "only PBT and PB2 create child trials",
            )),
        })?;
        self.inner.storage.set_trial_system_attr(
            loser.id,
            REPLACED_BY_ATTR,
            &Value::from(child_number),
        )?;
        Ok(child_number)
    }

    /// The child's parameters: PBT perturbs the winner's; PB2 picks the numeric ones with its
    /// GP bandit (categoricals are perturbed as in PBT).
    fn explore_params(&self, loser: u64, parent: &FrozenTrial, step: u64) -> Result<Params> {
        let mut rng = TrialRng::for_trial(self.seed(), loser, &format!("pbt-explore-{step}"));
        match &self.inner.config.scheduler {
            SchedulerSpec::Pbt { config, .. } => explore(&parent.params, config, &mut rng),
            SchedulerSpec::Pb2 { config, pb2, .. } => {
                let numeric: Vec<&crate::Param> = parent
                    .params
                    .as_slice()
                    .iter()
                    .filter(|p| !matches!(p.distribution(), Distribution::Categorical(_)))
                    .collect();
                let (observations, pending) = self.pb2_history(&numeric)?;
                let point = pb2_explore(
                    &observations,
                    &pending,
                    step as f64,
                    numeric.len(),
                    pb2,
                    &mut rng,
                )?;
                let mut out = Params::with_capacity(parent.params.len());
                for param in parent.params.as_slice() {
                    let dist = param.distribution();
                    let internal = match numeric.iter().position(|p| p.name() == param.name()) {
                        Some(k) => dist.from_unit(point[k]),
                        None => explore_value(dist, param.internal()?, config, &mut rng),
                    };
                    out.insert(param.with_internal(internal)?);
                }
                Ok(out)
            }
            other => Err(Error::invalid_argument(
                "scheduler",
                format!("{} does not explore parameters", other.name()),
            )),
        }
    }

    /// PB2's data: for every trial and every interval it finished, the improvement of its
    /// score over that interval (higher is better) at its parameters; and the parameters of
    /// the members training now.
    fn pb2_history(
        &self,
        numeric: &[&crate::Param],
    ) -> Result<(Vec<Pb2Observation>, Vec<Vec<f64>>)> {
        let interval = match self.inner.config.scheduler {
            SchedulerSpec::Pb2 { interval, .. } => interval,
            _ => 1,
        };
        let direction = self.directions()[0];
        let trials = self.trials()?;
        let by_number: BTreeMap<u64, &FrozenTrial> =
            trials.iter().map(|t| (t.number, t.as_ref())).collect();
        let unit = |t: &FrozenTrial| -> Option<Vec<f64>> {
            numeric
                .iter()
                .map(|p| {
                    let v = t.internal_param(p.name())?;
                    Some(p.distribution().to_unit(v).clamp(0.0, 1.0))
                })
                .collect()
        };
        let mut observations = Vec::new();
        let mut pending = Vec::new();
        for t in &trials {
            let Some(x) = unit(t) else { continue };
            if matches!(t.state, TrialState::Running | TrialState::Paused) {
                pending.push(x.clone());
            }
            let parent = t
                .system_attrs
                .get(PARENT_ATTR)
                .and_then(Value::as_u64)
                .and_then(|p| by_number.get(&p));
            for (&step, values) in &t.intermediate_values {
                if step % interval != 0 || step < interval {
                    continue;
                }
                let Some(&now) = values.first() else { continue };
                let before = t
                    .intermediate(step - interval)
                    .or_else(|| parent.and_then(|p| p.intermediate(step - interval)));
                let Some(before) = before else { continue };
                let reward = direction.to_loss(before) - direction.to_loss(now);
                if reward.is_finite() {
                    observations.push(Pb2Observation {
                        time: step as f64,
                        x: x.clone(),
                        reward,
                    });
                }
            }
        }
        Ok((observations, pending))
    }

    /// Finishes a trial the scheduler paused: Running → Paused (its checkpoint is saved).
    pub(crate) fn finish_paused(&self, frozen: &FrozenTrial) -> Result<()> {
        let won = self.inner.storage.set_trial_state(
            frozen.id,
            TrialState::Running,
            TrialState::Paused,
            None,
            None,
        )?;
        if won {
            Ok(())
        } else {
            let current = self.inner.storage.trial(frozen.id)?;
            Err(Error::TrialFinished {
                number: current.number,
                state: current.state,
            })
        }
    }

    /// Ends a trial of a scheduled study: finishes it as `outcome` (or pauses it), keeps the
    /// scheduler and the checkpoint references in step.
    pub(crate) fn finish_scheduled(
        &self,
        trial: &Trial<'_>,
        outcome: Option<Outcome>,
    ) -> Result<Option<Arc<FrozenTrial>>> {
        let Some(outcome) = outcome else {
            self.finish_paused(trial.frozen())?;
            return Ok(None);
        };
        // The record carries the attributes written while the trial ran (its checkpoint):
        // the live trial keeps them up to date.
        let done = self.finish(trial.frozen(), outcome)?;
        self.scheduler_trial_ended(&done, trial.held_parent(), trial.scheduler_knows_end())?;
        Ok(Some(done))
    }

    /// Tells the scheduler about trials reaped as dead (their workers died): they failed,
    /// and their checkpoints are released.
    pub(crate) fn scheduler_reaped(&self, reaped: &[Arc<FrozenTrial>]) -> Result<()> {
        if !self.has_scheduler() {
            return Ok(());
        }
        for t in reaped {
            let parent = checkpoint_id(t.system_attrs.get(RESUME_FROM_ATTR))
                .filter(|_| !t.system_attrs.contains_key(CHECKPOINT_ATTR));
            self.scheduler_trial_ended(t, parent, false)?;
        }
        Ok(())
    }

    /// The lineage of `trial`: the trial, its parent, its parent's parent… up to the first
    /// member, each with the step it resumed from (`None` for the first member). Replaying
    /// the parameters of each link from its step on reproduces the trial's model.
    pub fn lineage(&self, trial: u64) -> Result<Vec<(Arc<FrozenTrial>, Option<u64>)>> {
        let trials = self.trials()?;
        let by_number: BTreeMap<u64, &Arc<FrozenTrial>> =
            trials.iter().map(|t| (t.number, t)).collect();
        let mut chain = Vec::new();
        let mut current = Some(trial);
        while let Some(n) = current {
            let t = by_number
                .get(&n)
                .ok_or_else(|| Error::TrialNotFound(format!("#{n} in study `{}`", self.name())))?;
            if chain.len() > trials.len() {
                return Err(Error::Storage(format!(
                    "the parent links of trial #{trial} form a cycle"
                )));
            }
            let from = checkpoint_id(t.system_attrs.get(RESUME_FROM_ATTR)).map(|c| c.step);
            chain.push(((*t).clone(), from));
            current = t.system_attrs.get(PARENT_ATTR).and_then(Value::as_u64);
        }
        Ok(chain)
    }
}

#[cfg(test)]
#[path = "scheduled_tests.rs"]
mod tests;
