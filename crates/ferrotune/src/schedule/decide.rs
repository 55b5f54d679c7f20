//! The decisions of the pause-and-resume schedulers — asynchronous successive halving with
//! promotion, synchronous successive halving and synchronous Hyperband — as pure,
//! deterministic, serializable state machines.
//!
//! # The protocol
//! Every scheduler here answers two questions (see the design notes: "pause and resume is one
//! mechanism"):
//!
//! - **A free worker asks for work**: `next_work()` returns a [`Work`]. For
//!   [`Work::Start`] the worker creates a new trial (the storage numbers it) and tells the
//!   scheduler its number with `on_start(trial)`; the slot is reserved from `next_work()` on,
//!   so concurrent workers never start more configurations than a rung needs. A worker that
//!   gives up before creating its trial calls `abandon_start()`. For [`Work::Resume`] the
//!   worker loads the trial's checkpoint and runs it on to `to_step`. For [`Work::Wait`] it
//!   asks again later.
//! - **A running trial reports** a value at a step: `report(trial, step, value)` returns a
//!   [`Decision`]. [`Decision::Continue`]: keep training. [`Decision::Pause`]: save a
//!   checkpoint and free the worker; the trial may be resumed later. [`Decision::Stop`]: the
//!   trial goes no further (pruned). [`Decision::Complete`]: the trial has reached the maximum
//!   resource; finish it with this value. A trial that crashes is passed to `on_failed(trial)`.
//!
//! Trials are identified by their study-wide number; values are "lower is better" (the caller
//! negates a maximized objective). A NaN value (a diverged trial) ranks after every number, as
//! in [`promotions`]. No method panics on bad input or on a corrupted stored state: they
//! return [`Error::InvalidArgument`] naming the offending value.
//!
//! # Storage
//! Each scheduler is plain data that round-trips exactly through `serde_json` (non-finite
//! values are written as the strings `"nan"`, `"inf"` and `"-inf"`, which JSON numbers cannot
//! hold), so a study that stores it after every call and reloads it after a restart continues
//! the very same schedule. This module holds no storage itself.
//!
//! # The schedulers
//! - [`AshaScheduler`]: ASHA with promotion (Li, Jamieson, Rostamizadeh, Gonina, Ben-tzur,
//!   Hardt, Recht & Talwalkar, "A system for massively parallel hyperparameter tuning", MLSys
//!   2020, Algorithm 2). A worker never waits; promotions are made from what is known so far.
//! - [`SyncShaScheduler`]: synchronous successive halving (Jamieson & Talwalkar, AISTATS 2016)
//!   on a [`SuccessiveHalvingPlan`], one bracket after another. A rung is judged only when all
//!   its trials have reported, so workers wait at each rung's barrier.
//! - [`SyncHyperbandScheduler`]: Hyperband (Li et al., JMLR 18(185), 2017, Algorithm 1) on a
//!   [`HyperbandPlan`]: its brackets run **one after another** in the paper's order
//!   `s = s_max, …, 0`, then again from `s_max` (a new Hyperband iteration). Brackets are not
//!   interleaved: the sampler sees one bracket at a time and the schedule is the paper's, at
//!   the price of idle workers at each barrier (NNI's `exec_mode="parallelism"` and Ray's
//!   `HyperBandScheduler` overlap brackets instead).

use crate::error::{Error, Result};
use crate::schedule::brackets::{promotions, HyperbandPlan, Rung, SuccessiveHalvingPlan};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a free worker should do next, as a scheduler answers its request for work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Work {
    /// Start a new configuration at the lowest rung, then call the scheduler's `on_start` with
    /// the new trial's number. `bracket` is Hyperband's bracket index `s` (so the sampler can
    /// be shown that bracket only); `None` for schedulers with a single bracket.
    Start {
        /// Hyperband's bracket `s`, or `None`.
        bracket: Option<u32>,
    },
    /// Resume the paused trial `trial` from its checkpoint and run it on to step `to_step`.
    Resume {
        /// The trial's study-wide number.
        trial: u64,
        /// The step (resource) of the rung it is promoted to.
        to_step: u64,
    },
    /// Nothing to do now (a synchronous rung is still running): ask again later.
    Wait,
    /// Nothing is left to run: every member has reached the maximum step (Population Based
    /// Training's population is complete; the successive-halving schedulers never finish).
    Finished,
}

/// A scheduler's answer to a trial's report at a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Keep training: the trial has not reached its rung, or it was promoted on the spot.
    Continue,
    /// Save a checkpoint and free the worker: the trial waits at its rung for a promotion.
    Pause,
    /// The trial goes no further (it was not promoted): prune it.
    Stop,
    /// The trial reached the maximum resource: finish it with the reported value.
    Complete,
}

/// `(de)serializes` an `f64` exactly, non-finite values included (JSON numbers cannot hold
/// NaN or ±∞, and `serde_json` would write them as `null`). Shared with
/// [`population`](super::population).
pub(crate) mod exact_f64 {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
        if value.is_nan() {
            s.serialize_str("nan")
        } else if value.is_infinite() {
            s.serialize_str(if *value > 0.0 { "inf" } else { "-inf" })
        } else {
            s.serialize_f64(*value)
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Number(x) => Ok(x),
            Repr::Text(t) => match t.as_str() {
                "nan" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                other => Err(D::Error::custom(format!(
                    "expected a number, \"nan\", \"inf\" or \"-inf\", got {other:?}"
                ))),
            },
        }
    }
}

/// The error for a trial the scheduler does not know.
fn unknown_trial(trial: u64) -> Error {
    Error::invalid_argument(
        "trial",
        format!(
            "trial #{trial} is not scheduled here; report only trials this scheduler started \
             (call on_start with the number of each trial created for Work::Start)"
        ),
    )
}

/// The error for `on_start` without a pending [`Work::Start`].
fn no_pending_start(trial: u64) -> Error {
    Error::invalid_argument(
        "trial",
        format!(
            "on_start(#{trial}) without a pending Work::Start; call next_work first and \
             on_start once per Work::Start it returned"
        ),
    )
}

/// The error for a stored state that breaks the scheduler's invariants.
fn corrupt(what: &str) -> Error {
    Error::invalid_argument(
        "state",
        format!("the stored scheduler state is inconsistent ({what}); restore an intact copy"),
    )
}

// ---------------------------------------------------------------------------------------------
// ASHA
// ---------------------------------------------------------------------------------------------

/// One result recorded at an ASHA rung.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct AshaEntry {
    trial: u64,
    #[serde(with = "exact_f64")]
    value: f64,
    /// Whether the trial was promoted from this rung (at most once).
    promoted: bool,
}

/// Where an ASHA trial stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AshaStatus {
    /// Training towards rung `rung`.
    Running { rung: usize },
    /// Paused at rung `rung`, waiting for a promotion.
    Paused { rung: usize },
    /// Reached the maximum resource.
    Completed,
    /// Crashed; never promoted.
    Failed,
}

/// Asynchronous successive halving **with promotion** (ASHA; Li et al., "A system for
/// massively parallel hyperparameter tuning", MLSys 2020, Algorithm 2).
///
/// The rungs are those of Hyperband's most aggressive bracket over `[min_resource,
/// max_resource]`: `K + 1` rungs with `K = ⌊log_η(R/r_min)⌋` (computed exactly in integers),
/// rung `k` at step `⌊R/η^(K−k)⌋` — `r_min·ηᵏ` when `R/r_min` is a power of η, as in the
/// paper; otherwise anchored at `R` like [`SuccessiveHalvingPlan`] (the last rung is exactly
/// `R`, the lower ones rounded down). The paper's minimum early-stopping rate `s` is 0; raise
/// `min_resource` for a larger one.
///
/// A trial that reaches a rung's step is recorded there and **paused**
/// ([`Decision::Pause`]), or completes ([`Decision::Complete`]) at the top rung. A free worker
/// ([`next_work`](Self::next_work)) scans the rungs from the top-but-one down and resumes the
/// best trial of rung `k` that is among its top `⌊n_k/η⌋` results and not yet promoted from
/// it; when there is none, it starts a new configuration. So a worker **never waits**: the
/// price is that some promotions are made on few results (the paper's "mistakes", which grow
/// rarer as rungs fill). Ray's `ASHAScheduler` and today's Syne Tune `ASHA` are the
/// *stopping* variant instead (they never pause); this is Syne Tune's legacy
/// `type="promotion"` rung system.
///
/// A trial that fails keeps the results it recorded (they were real measurements: they still
/// count in `n_k` and rank where their values put them), but it is never promoted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AshaScheduler {
    plan: SuccessiveHalvingPlan,
    /// The step of each rung, lowest first.
    resources: Vec<u64>,
    /// The results recorded at each rung, in arrival order.
    rungs: Vec<Vec<AshaEntry>>,
    /// Every trial started here.
    trials: BTreeMap<u64, AshaStatus>,
    /// [`Work::Start`]s handed out whose trial has not been registered yet.
    pending_starts: u64,
}

impl AshaScheduler {
    /// ASHA over the steps `1 ≤ min_resource ≤ max_resource` with reduction factor `eta ≥ 2`
    /// (the paper uses η = 4 in its experiments; 3 is the Hyperband default). The argument
    /// order is [`HyperbandPlan::new`]'s.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `min_resource` (0), `max_resource` (below
    /// `min_resource`) or `eta` (below 2).
    pub fn new(max_resource: u64, min_resource: u64, eta: u64) -> Result<Self> {
        let plan = SuccessiveHalvingPlan::new(1, min_resource, max_resource, eta)?;
        let resources: Vec<u64> = plan.bracket().rungs.iter().map(|r| r.resource).collect();
        Ok(AshaScheduler {
            plan,
            rungs: vec![Vec::new(); resources.len()],
            resources,
            trials: BTreeMap::new(),
            pending_starts: 0,
        })
    }

    /// The steps at which trials are recorded and paused, lowest first; the last one is
    /// `max_resource`.
    pub fn rung_resources(&self) -> &[u64] {
        &self.resources
    }

    /// How many results each rung has recorded so far, lowest rung first.
    pub fn rung_sizes(&self) -> Vec<usize> {
        self.rungs.iter().map(Vec::len).collect()
    }

    /// The reduction factor η.
    pub fn eta(&self) -> u64 {
        self.plan.eta()
    }

    /// What a free worker should do: resume the best promotable paused trial, scanning the
    /// rungs from the top-but-one down, or else start a new configuration. Never
    /// [`Work::Wait`]. A returned [`Work::Resume`] marks the trial promoted and running.
    ///
    /// # Errors
    /// Only for a corrupted stored state.
    pub fn next_work(&mut self) -> Result<Work> {
        let eta = self.plan.eta();
        let eta_len = usize::try_from(eta).unwrap_or(usize::MAX);
        for k in (0..self.rungs.len().saturating_sub(1)).rev() {
            let rung = &self.rungs[k];
            if rung.len() < eta_len {
                continue; // ⌊n_k/η⌋ = 0: nothing is promotable yet.
            }
            let results: Vec<(u64, f64)> = rung.iter().map(|e| (e.trial, e.value)).collect();
            // With n_k ≥ η, `promotions` is exactly the best ⌊n_k/η⌋, best first.
            let top = promotions(&results, eta)?;
            let candidate = top.into_iter().find(|&trial| {
                let eligible = self.trials.get(&trial) == Some(&AshaStatus::Paused { rung: k });
                eligible && rung.iter().any(|e| e.trial == trial && !e.promoted)
            });
            if let Some(trial) = candidate {
                let to_step = *self
                    .resources
                    .get(k + 1)
                    .ok_or_else(|| corrupt("fewer rung resources than rungs"))?;
                for entry in self.rungs[k].iter_mut().filter(|e| e.trial == trial) {
                    entry.promoted = true;
                }
                self.trials
                    .insert(trial, AshaStatus::Running { rung: k + 1 });
                return Ok(Work::Resume { trial, to_step });
            }
        }
        self.pending_starts += 1;
        Ok(Work::Start { bracket: None })
    }

    /// Registers the trial created for a [`Work::Start`]: it trains towards the lowest rung.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when no start is pending or the trial is
    /// already known.
    pub fn on_start(&mut self, trial: u64) -> Result<()> {
        if self.pending_starts == 0 {
            return Err(no_pending_start(trial));
        }
        if self.trials.contains_key(&trial) {
            return Err(already_known(trial));
        }
        self.pending_starts -= 1;
        self.trials.insert(trial, AshaStatus::Running { rung: 0 });
        Ok(())
    }

    /// Releases a [`Work::Start`] whose worker gave up before creating its trial.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `pending_starts` when none is pending.
    pub fn abandon_start(&mut self) -> Result<()> {
        self.pending_starts = self
            .pending_starts
            .checked_sub(1)
            .ok_or_else(no_start_to_abandon)?;
        Ok(())
    }

    /// A running trial's value at `step`: [`Decision::Continue`] below its rung's step;
    /// at or past it the value is recorded at that rung and the trial is paused
    /// ([`Decision::Pause`]), or, at the top rung, completes ([`Decision::Complete`]).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when the trial is unknown or not running
    /// (paused, completed or failed).
    pub fn report(&mut self, trial: u64, step: u64, value: f64) -> Result<Decision> {
        let status = *self
            .trials
            .get(&trial)
            .ok_or_else(|| unknown_trial(trial))?;
        let AshaStatus::Running { rung } = status else {
            return Err(not_running(trial, &format!("{status:?}")));
        };
        let resource = *self
            .resources
            .get(rung)
            .ok_or_else(|| corrupt("a trial runs towards a rung that does not exist"))?;
        if step < resource {
            return Ok(Decision::Continue);
        }
        let entries = self
            .rungs
            .get_mut(rung)
            .ok_or_else(|| corrupt("fewer rungs than rung resources"))?;
        entries.push(AshaEntry {
            trial,
            value,
            promoted: false,
        });
        if rung + 1 == self.resources.len() {
            self.trials.insert(trial, AshaStatus::Completed);
            Ok(Decision::Complete)
        } else {
            self.trials.insert(trial, AshaStatus::Paused { rung });
            Ok(Decision::Pause)
        }
    }

    /// Marks a trial failed (crashed while running, or its checkpoint is lost while paused):
    /// it is never promoted.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when it is unknown or already completed.
    pub fn on_failed(&mut self, trial: u64) -> Result<()> {
        match self.trials.get_mut(&trial) {
            None => Err(unknown_trial(trial)),
            Some(AshaStatus::Completed) => Err(Error::invalid_argument(
                "trial",
                format!("trial #{trial} already completed at the maximum resource; it cannot fail"),
            )),
            Some(status) => {
                *status = AshaStatus::Failed;
                Ok(())
            }
        }
    }
}

/// The error for `on_start` with a trial number already in use.
fn already_known(trial: u64) -> Error {
    Error::invalid_argument(
        "trial",
        format!("trial #{trial} was already started here; pass each new trial's number once"),
    )
}

/// The error for `abandon_start` without a pending start.
fn no_start_to_abandon() -> Error {
    Error::invalid_argument(
        "pending_starts",
        "no Work::Start is pending (got 0); call abandon_start only for a Work::Start whose \
         trial was never created",
    )
}

/// The error for a report from a trial that is not running.
fn not_running(trial: u64, status: &str) -> Error {
    Error::invalid_argument(
        "trial",
        format!(
            "trial #{trial} is not running (it is {status}); report only between Work::Start or \
             Work::Resume and the next Pause, Stop or Complete"
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Synchronous successive halving and Hyperband
// ---------------------------------------------------------------------------------------------

/// Where a trial of the current synchronous rung stands.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum MemberState {
    /// Promoted into the rung, waiting for a worker to resume it.
    Queued,
    /// Training towards the rung's step.
    Running,
    /// Reached the rung's step with this value; paused until the rung is judged.
    Reported {
        #[serde(with = "exact_f64")]
        value: f64,
    },
    /// Crashed: counts as a result that ranks last and is never promoted.
    Failed,
}

/// A trial of the current synchronous rung.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Member {
    trial: u64,
    state: MemberState,
}

/// One running bracket of synchronous successive halving.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct BracketRun {
    /// Hyperband's bracket index.
    s: u32,
    eta: u64,
    /// The plan's rungs.
    rungs: Vec<Rung>,
    /// The index of the current rung.
    rung: usize,
    /// [`Work::Start`]s handed out for the first rung whose trial is not registered yet.
    pending_starts: u64,
    /// The current rung's trials: for the first rung in the order they started, for later
    /// ones in promotion order (best first).
    members: Vec<Member>,
}

/// What a report or failure did to a bracket, besides its own decision.
struct Judged {
    /// The reporter's own fate when its report completed the rung.
    reporter: Option<Decision>,
    /// Whether the bracket has finished.
    finished: bool,
}

impl BracketRun {
    fn new(s: u32, eta: u64, rungs: Vec<Rung>) -> Self {
        BracketRun {
            s,
            eta,
            rungs,
            rung: 0,
            pending_starts: 0,
            members: Vec::new(),
        }
    }

    fn current(&self) -> Result<Rung> {
        self.rungs
            .get(self.rung)
            .copied()
            .ok_or_else(|| corrupt("the current rung is past the bracket's last"))
    }

    /// Start, resume or wait. `None` stands for [`Work::Start`] (the caller adds the bracket).
    fn next_work(&mut self) -> Result<Option<Work>> {
        let rung = self.current()?;
        if self.rung == 0 && (self.members.len() as u64) + self.pending_starts < rung.configs {
            self.pending_starts += 1;
            return Ok(None);
        }
        if let Some(member) = self
            .members
            .iter_mut()
            .find(|m| m.state == MemberState::Queued)
        {
            member.state = MemberState::Running;
            return Ok(Some(Work::Resume {
                trial: member.trial,
                to_step: rung.resource,
            }));
        }
        Ok(Some(Work::Wait))
    }

    fn on_start(&mut self, trial: u64) -> Result<()> {
        if self.pending_starts == 0 || self.rung != 0 {
            return Err(no_pending_start(trial));
        }
        if self.members.iter().any(|m| m.trial == trial) {
            return Err(already_known(trial));
        }
        self.pending_starts -= 1;
        self.members.push(Member {
            trial,
            state: MemberState::Running,
        });
        Ok(())
    }

    fn abandon_start(&mut self) -> Result<()> {
        self.pending_starts = self
            .pending_starts
            .checked_sub(1)
            .ok_or_else(no_start_to_abandon)?;
        Ok(())
    }

    fn member(&mut self, trial: u64) -> Result<&mut Member> {
        self.members
            .iter_mut()
            .find(|m| m.trial == trial)
            .ok_or_else(|| unknown_trial(trial))
    }

    fn report(
        &mut self,
        trial: u64,
        step: u64,
        value: f64,
        stopped: &mut Vec<u64>,
    ) -> Result<(Decision, bool)> {
        let rung = self.current()?;
        let last = self.rung + 1 == self.rungs.len();
        let member = self.member(trial)?;
        if member.state != MemberState::Running {
            return Err(not_running(trial, &format!("{:?}", member.state)));
        }
        if step < rung.resource {
            return Ok((Decision::Continue, false));
        }
        member.state = MemberState::Reported { value };
        let judged = self.judge(Some(trial), stopped)?;
        let own = if last {
            Decision::Complete
        } else {
            judged.reporter.unwrap_or(Decision::Pause)
        };
        Ok((own, judged.finished))
    }

    fn on_failed(&mut self, trial: u64, stopped: &mut Vec<u64>) -> Result<bool> {
        self.member(trial)?.state = MemberState::Failed;
        Ok(self.judge(None, stopped)?.finished)
    }

    /// Whether every trial of the current rung has reported or failed.
    fn rung_complete(&self) -> Result<bool> {
        let rung = self.current()?;
        let all_started = self.rung != 0
            || (self.pending_starts == 0 && self.members.len() as u64 >= rung.configs);
        Ok(all_started
            && self
                .members
                .iter()
                .all(|m| matches!(m.state, MemberState::Reported { .. } | MemberState::Failed)))
    }

    /// Judges every complete rung: the best `⌊n/η⌋` (at least one; failed trials never) go on,
    /// the others are stopped. The `reporter`, whose report completed the rung, is still
    /// running: promoted, it continues at once rather than pausing and being resumed (as Ray's
    /// `HyperBandScheduler` does); not promoted, it stops.
    fn judge(&mut self, reporter: Option<u64>, stopped: &mut Vec<u64>) -> Result<Judged> {
        let mut own = None;
        loop {
            if !self.rung_complete()? {
                return Ok(Judged {
                    reporter: own,
                    finished: false,
                });
            }
            if self.rung + 1 >= self.rungs.len() {
                return Ok(Judged {
                    reporter: own,
                    finished: true,
                });
            }
            let results: Vec<(u64, f64)> = self
                .members
                .iter()
                .map(|m| match m.state {
                    MemberState::Reported { value } => (m.trial, value),
                    _ => (m.trial, f64::NAN),
                })
                .collect();
            let failed = |trial: u64| {
                self.members
                    .iter()
                    .any(|m| m.trial == trial && m.state == MemberState::Failed)
            };
            let promoted: Vec<u64> = promotions(&results, self.eta)?
                .into_iter()
                .filter(|&t| !failed(t))
                .collect();
            let mut next = Vec::with_capacity(promoted.len());
            for &trial in &promoted {
                let state = if Some(trial) == reporter {
                    own = Some(Decision::Continue);
                    MemberState::Running
                } else {
                    MemberState::Queued
                };
                next.push(Member { trial, state });
            }
            for m in &self.members {
                if matches!(m.state, MemberState::Reported { .. }) && !promoted.contains(&m.trial) {
                    if Some(m.trial) == reporter {
                        own = Some(Decision::Stop);
                    } else {
                        stopped.push(m.trial);
                    }
                }
            }
            self.members = next;
            self.rung += 1;
        }
    }
}

/// The shared state of the synchronous schedulers: the running bracket and what it stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SyncState {
    bracket: BracketRun,
    /// Paused trials that a judged rung did not promote, not yet taken.
    stopped: Vec<u64>,
    /// How many brackets have finished.
    brackets_completed: u64,
}

impl SyncState {
    /// Runs `f` on the bracket; when the bracket finishes, `next` builds the following one.
    fn step<T>(
        &mut self,
        f: impl FnOnce(&mut BracketRun, &mut Vec<u64>) -> Result<(T, bool)>,
        next: impl FnOnce(&BracketRun) -> BracketRun,
    ) -> Result<T> {
        let (out, finished) = f(&mut self.bracket, &mut self.stopped)?;
        if finished {
            self.brackets_completed += 1;
            self.bracket = next(&self.bracket);
        }
        Ok(out)
    }
}

/// Synchronous successive halving (Jamieson & Talwalkar, "Non-stochastic best arm
/// identification and hyperparameter optimization", AISTATS 2016) on a
/// [`SuccessiveHalvingPlan`], with pause and resume; when the bracket finishes, a new one of
/// the same plan starts.
///
/// [`next_work`](Self::next_work) returns [`Work::Start`] while the first rung still needs
/// configurations, [`Work::Wait`] while the current rung is not complete (the synchronous
/// barrier: stragglers idle the other workers), and [`Work::Resume`] for the promoted trials
/// of a judged rung, one per call, best first. A trial that reaches its rung's step pauses;
/// the report that completes a rung judges it with [`promotions`] (the best `⌊n/η⌋`, at least
/// one): the reporter itself continues (promoted) or stops, the other promoted trials are
/// queued for resumption and the other paused ones are stopped — see
/// [`take_stopped`](Self::take_stopped). A failed trial counts as the worst result of its rung
/// (as in HpBandSter) and is never promoted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncShaScheduler {
    plan: SuccessiveHalvingPlan,
    state: SyncState,
}

impl SyncShaScheduler {
    /// A scheduler that runs `plan`'s bracket over and over.
    pub fn new(plan: SuccessiveHalvingPlan) -> Self {
        SyncShaScheduler {
            state: SyncState {
                bracket: Self::bracket_of(&plan),
                stopped: Vec::new(),
                brackets_completed: 0,
            },
            plan,
        }
    }

    fn bracket_of(plan: &SuccessiveHalvingPlan) -> BracketRun {
        let bracket = plan.bracket();
        BracketRun::new(bracket.s, plan.eta(), bracket.rungs)
    }

    /// The plan.
    pub fn plan(&self) -> &SuccessiveHalvingPlan {
        &self.plan
    }

    /// The index of the current rung of the running bracket (0 is the first).
    pub fn current_rung(&self) -> usize {
        self.state.bracket.rung
    }

    /// How many brackets have finished.
    pub fn brackets_completed(&self) -> u64 {
        self.state.brackets_completed
    }

    /// Start, resume or wait; see the [type documentation](Self).
    ///
    /// # Errors
    /// Only for a corrupted stored state.
    pub fn next_work(&mut self) -> Result<Work> {
        Ok(self
            .state
            .bracket
            .next_work()?
            .unwrap_or(Work::Start { bracket: None }))
    }

    /// Registers the trial created for a [`Work::Start`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when no start is pending or the trial is
    /// already in the rung.
    pub fn on_start(&mut self, trial: u64) -> Result<()> {
        self.state.bracket.on_start(trial)
    }

    /// Releases a [`Work::Start`] whose worker gave up before creating its trial.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `pending_starts` when none is pending.
    pub fn abandon_start(&mut self) -> Result<()> {
        self.state.bracket.abandon_start()
    }

    /// A running trial's value at `step`; see the [type documentation](Self).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when it is not a running trial of the
    /// current rung.
    pub fn report(&mut self, trial: u64, step: u64, value: f64) -> Result<Decision> {
        let plan = self.plan;
        self.state.step(
            |b, stopped| b.report(trial, step, value, stopped),
            |_| Self::bracket_of(&plan),
        )
    }

    /// Marks a trial of the current rung failed (crashed, or its checkpoint is lost): it
    /// ranks last and is never promoted. This may complete the rung.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when it is not in the current rung.
    pub fn on_failed(&mut self, trial: u64) -> Result<()> {
        let plan = self.plan;
        self.state.step(
            |b, stopped| Ok(((), b.on_failed(trial, stopped)?)),
            |_| Self::bracket_of(&plan),
        )
    }

    /// Takes the paused trials that judged rungs did not promote, in the order they were
    /// stopped: the caller marks them pruned and may delete their checkpoints.
    pub fn take_stopped(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.state.stopped)
    }
}

/// Synchronous Hyperband (Li et al., "Hyperband: a novel bandit-based approach to
/// hyperparameter optimization", JMLR 18(185), 2017, Algorithm 1) on a [`HyperbandPlan`], with
/// pause and resume.
///
/// The brackets run **one after another, not interleaved**, in the paper's order
/// `s = s_max, …, 0`, then again from `s_max`; each is synchronous successive halving with the
/// plan's sizes and steps, decided exactly as [`SyncShaScheduler`] decides. [`Work::Start`]
/// carries the bracket `s`, so the sampler can be shown that bracket's trials only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncHyperbandScheduler {
    plan: HyperbandPlan,
    state: SyncState,
}

impl SyncHyperbandScheduler {
    /// A scheduler that runs `plan`'s brackets from `s_max` down to 0, over and over.
    pub fn new(plan: HyperbandPlan) -> Self {
        SyncHyperbandScheduler {
            state: SyncState {
                bracket: Self::bracket_of(&plan, plan.s_max()),
                stopped: Vec::new(),
                brackets_completed: 0,
            },
            plan,
        }
    }

    /// Bracket `s` of `plan` (`s ≤ s_max`, so never empty).
    fn bracket_of(plan: &HyperbandPlan, s: u32) -> BracketRun {
        let rungs = plan.bracket(s).map(|b| b.rungs).unwrap_or_default();
        BracketRun::new(s, plan.eta(), rungs)
    }

    /// The bracket after `s`: `s − 1`, or `s_max` after bracket 0.
    fn after(plan: &HyperbandPlan, s: u32) -> BracketRun {
        let next = if s == 0 || s > plan.s_max() {
            plan.s_max()
        } else {
            s - 1
        };
        Self::bracket_of(plan, next)
    }

    /// The plan.
    pub fn plan(&self) -> &HyperbandPlan {
        &self.plan
    }

    /// The running bracket's `s`.
    pub fn current_bracket(&self) -> u32 {
        self.state.bracket.s
    }

    /// The index of the current rung of the running bracket (0 is the first).
    pub fn current_rung(&self) -> usize {
        self.state.bracket.rung
    }

    /// How many brackets have finished (all iterations together).
    pub fn brackets_completed(&self) -> u64 {
        self.state.brackets_completed
    }

    /// Start (in the running bracket), resume or wait; see [`SyncShaScheduler::next_work`].
    ///
    /// # Errors
    /// Only for a corrupted stored state.
    pub fn next_work(&mut self) -> Result<Work> {
        let s = self.state.bracket.s;
        Ok(self
            .state
            .bracket
            .next_work()?
            .unwrap_or(Work::Start { bracket: Some(s) }))
    }

    /// Registers the trial created for a [`Work::Start`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when no start is pending or the trial is
    /// already in the rung.
    pub fn on_start(&mut self, trial: u64) -> Result<()> {
        self.state.bracket.on_start(trial)
    }

    /// Releases a [`Work::Start`] whose worker gave up before creating its trial.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `pending_starts` when none is pending.
    pub fn abandon_start(&mut self) -> Result<()> {
        self.state.bracket.abandon_start()
    }

    /// A running trial's value at `step`; see [`SyncShaScheduler::report`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when it is not a running trial of the
    /// current rung.
    pub fn report(&mut self, trial: u64, step: u64, value: f64) -> Result<Decision> {
        let plan = self.plan;
        self.state.step(
            |b, stopped| b.report(trial, step, value, stopped),
            |b| Self::after(&plan, b.s),
        )
    }

    /// Marks a trial of the current rung failed; see [`SyncShaScheduler::on_failed`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when it is not in the current rung.
    pub fn on_failed(&mut self, trial: u64) -> Result<()> {
        let plan = self.plan;
        self.state.step(
            |b, stopped| Ok(((), b.on_failed(trial, stopped)?)),
            |b| Self::after(&plan, b.s),
        )
    }

    /// Takes the paused trials that judged rungs did not promote; see
    /// [`SyncShaScheduler::take_stopped`].
    pub fn take_stopped(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.state.stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use std::collections::{BTreeSet, HashSet};

    /// The three schedulers behind one interface, for the simulation.
    trait Sched: Clone + Serialize + DeserializeOwned {
        fn work(&mut self) -> Result<Work>;
        fn start(&mut self, trial: u64) -> Result<()>;
        fn step(&mut self, trial: u64, step: u64, value: f64) -> Result<Decision>;
    }

    macro_rules! sched {
        ($t:ty) => {
            impl Sched for $t {
                fn work(&mut self) -> Result<Work> {
                    self.next_work()
                }
                fn start(&mut self, trial: u64) -> Result<()> {
                    self.on_start(trial)
                }
                fn step(&mut self, trial: u64, step: u64, value: f64) -> Result<Decision> {
                    self.report(trial, step, value)
                }
            }
        };
    }
    sched!(AshaScheduler);
    sched!(SyncShaScheduler);
    sched!(SyncHyperbandScheduler);

    /// A fixed pseudo-random unit number per trial (splitmix64 of a fixed seed and the number).
    fn quality(trial: u64) -> f64 {
        let mut z = trial
            .wrapping_add(0x5EED_5EED_5EED_5EED)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A learning curve: the trial's quality plus a term that shrinks with the steps.
    fn curve(trial: u64, step: u64) -> f64 {
        quality(trial) + 1.0 / step as f64
    }

    /// [`curve`], with some diverged (NaN) and infinite values.
    fn odd_curve(trial: u64, step: u64) -> f64 {
        match trial % 11 {
            3 => f64::NAN,
            7 if step > 2 => f64::INFINITY,
            _ => curve(trial, step),
        }
    }

    #[derive(Clone, Debug, PartialEq)]
    enum Event {
        Work(Work),
        Report(u64, u64, Decision),
    }

    #[derive(Default)]
    struct Outcome {
        log: Vec<Event>,
        /// `(trial, bracket)` of every started trial.
        started: Vec<(u64, Option<u32>)>,
        busy: u64,
        idle: u64,
    }

    impl Outcome {
        fn idle_fraction(&self) -> f64 {
            self.idle as f64 / (self.idle + self.busy) as f64
        }

        /// The decisions other than Continue.
        fn decisions(&self) -> impl Iterator<Item = (u64, u64, Decision)> + '_ {
            self.log.iter().filter_map(|e| match *e {
                Event::Report(t, s, d) if d != Decision::Continue => Some((t, s, d)),
                _ => None,
            })
        }

        /// The distinct trials that reported at `step`.
        fn reached(&self, step: u64) -> BTreeSet<u64> {
            self.log
                .iter()
                .filter_map(|e| match *e {
                    Event::Report(t, s, _) if s == step => Some(t),
                    _ => None,
                })
                .collect()
        }
    }

    /// A discrete-event simulation in unit time steps: `workers` workers, every training step
    /// costs one tick, checkpoints cost nothing. Each tick, every free worker asks for work
    /// (a `Wait` idles it for the tick), then every busy worker trains its trial one step and
    /// reports `value(trial, step)`. Runs until `budget` training steps are spent; with
    /// `save_at`, the scheduler goes through JSON at that tick. `check` sees the state before
    /// each `next_work` and its answer.
    fn simulate<S: Sched>(
        s: &mut S,
        workers: usize,
        budget: u64,
        save_at: Option<u64>,
        value: fn(u64, u64) -> f64,
        mut check: impl FnMut(&S, &Work),
    ) -> Result<Outcome> {
        let mut out = Outcome::default();
        let mut slots: Vec<Option<u64>> = vec![None; workers];
        let mut trained: BTreeMap<u64, u64> = BTreeMap::new();
        let mut tick = 0u64;
        while out.busy < budget {
            assert!(tick < 100 * budget, "the schedule is stuck");
            if Some(tick) == save_at {
                let json = serde_json::to_string(&*s)?;
                *s = serde_json::from_str(&json)?;
                assert_eq!(serde_json::to_string(&*s)?, json, "the state round-trips");
            }
            for slot in slots.iter_mut().filter(|slot| slot.is_none()) {
                let before = s.clone();
                let work = s.work()?;
                check(&before, &work);
                out.log.push(Event::Work(work));
                match work {
                    Work::Start { bracket } => {
                        let trial = trained.len() as u64;
                        s.start(trial)?;
                        trained.insert(trial, 0);
                        out.started.push((trial, bracket));
                        *slot = Some(trial);
                    }
                    Work::Resume { trial, to_step } => {
                        assert!(trained.get(&trial).is_some_and(|&at| at < to_step));
                        *slot = Some(trial);
                    }
                    Work::Wait => out.idle += 1,
                    Work::Finished => panic!("successive halving never finishes"),
                }
            }
            for slot in &mut slots {
                let Some(trial) = *slot else { continue };
                let at = trained.entry(trial).or_default();
                *at += 1;
                out.busy += 1;
                let decision = s.step(trial, *at, value(trial, *at))?;
                out.log.push(Event::Report(trial, *at, decision));
                if decision != Decision::Continue {
                    *slot = None;
                }
            }
            tick += 1;
        }
        Ok(out)
    }

    fn no_check<S>(_: &S, _: &Work) {}

    fn invalid_name<T: std::fmt::Debug>(r: Result<T>) -> &'static str {
        match r {
            Err(Error::InvalidArgument { name, .. }) => name,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn asha_rungs_follow_the_plans() -> Result<()> {
        assert_eq!(
            AshaScheduler::new(81, 1, 3)?.rung_resources(),
            [1, 3, 9, 27, 81]
        );
        assert_eq!(
            AshaScheduler::new(100, 1, 3)?.rung_resources(),
            [1, 3, 11, 33, 100]
        );
        assert_eq!(
            AshaScheduler::new(64, 1, 4)?.rung_resources(),
            [1, 4, 16, 64]
        );
        assert_eq!(AshaScheduler::new(2, 1, 3)?.rung_resources(), [2]);
        Ok(())
    }

    #[test]
    fn asha_never_waits_and_promotes_only_the_top_fraction_once() -> Result<()> {
        let mut asha = AshaScheduler::new(81, 1, 3)?;
        let mut promoted = HashSet::new();
        let mut resumes = 0;
        let out = simulate(&mut asha, 7, 4_000, None, curve, |before, work| {
            assert_ne!(*work, Work::Wait, "ASHA never waits");
            let Work::Resume { trial, to_step } = *work else {
                return;
            };
            resumes += 1;
            let k = before
                .resources
                .iter()
                .position(|&r| r == to_step)
                .and_then(|i| i.checked_sub(1));
            let Some(k) = k else {
                panic!("resumed to {to_step}, not a rung above the first");
            };
            let rung = &before.rungs[k];
            let results: Vec<(u64, f64)> = rung.iter().map(|e| (e.trial, e.value)).collect();
            let keep = rung.len() / 3;
            assert!(keep >= 1, "promotion from a rung of {} results", rung.len());
            let top = promotions(&results, 3).unwrap_or_default();
            assert_eq!(top.len(), keep);
            assert!(
                top.contains(&trial),
                "#{trial} is not in the top 1/3 of rung {k}"
            );
            assert!(rung.iter().any(|e| e.trial == trial && !e.promoted));
            assert_eq!(
                before.trials.get(&trial),
                Some(&AshaStatus::Paused { rung: k })
            );
            assert!(
                promoted.insert((trial, k)),
                "#{trial} promoted twice from rung {k}"
            );
            // The scan is top-down: no rung above k had a promotable trial.
            for j in k + 1..before.rungs.len() - 1 {
                let above: Vec<(u64, f64)> =
                    before.rungs[j].iter().map(|e| (e.trial, e.value)).collect();
                if above.len() >= 3 {
                    for t in promotions(&above, 3).unwrap_or_default() {
                        let open = before.rungs[j].iter().any(|e| e.trial == t && !e.promoted)
                            && before.trials.get(&t) == Some(&AshaStatus::Paused { rung: j });
                        assert!(!open, "#{t} in rung {j} was promotable first");
                    }
                }
            }
        })?;
        assert!(resumes > 100);
        assert_eq!(out.idle, 0);
        // Trials reached the top. (Over the whole run a rung may have promoted a little more
        // than ⌊n_k/η⌋ of its final size: early promotions are judged on fewer results —
        // the paper's "mistakes"; each was in the top 1/η when it was made.)
        let sizes = asha.rung_sizes();
        assert!(sizes[4] >= 1, "{sizes:?}");
        assert!(out
            .decisions()
            .any(|(_, s, d)| s == 81 && d == Decision::Complete));
        Ok(())
    }

    #[test]
    fn asha_never_promotes_a_failed_trial() -> Result<()> {
        let mut asha = AshaScheduler::new(9, 1, 3)?;
        for (trial, value) in [(0, 0.5), (1, 0.1), (2, 0.9)] {
            assert_eq!(asha.next_work()?, Work::Start { bracket: None });
            asha.on_start(trial)?;
            assert_eq!(asha.report(trial, 0, value)?, Decision::Continue);
            assert_eq!(asha.report(trial, 1, value)?, Decision::Pause);
        }
        let mut healthy = asha.clone();
        assert_eq!(
            healthy.next_work()?,
            Work::Resume {
                trial: 1,
                to_step: 3
            }
        );
        // ⌊3/3⌋ = 1 promotion, made: the next free worker starts a new configuration.
        assert_eq!(healthy.next_work()?, Work::Start { bracket: None });

        asha.on_failed(1)?;
        assert_eq!(asha.next_work()?, Work::Start { bracket: None });
        assert_eq!(invalid_name(asha.report(1, 2, 0.0)), "trial");
        Ok(())
    }

    #[test]
    fn bad_inputs_are_invalid_arguments() -> Result<()> {
        assert_eq!(invalid_name(AshaScheduler::new(81, 0, 3)), "min_resource");
        assert_eq!(invalid_name(AshaScheduler::new(81, 1, 1)), "eta");
        let mut asha = AshaScheduler::new(81, 1, 3)?;
        assert_eq!(invalid_name(asha.report(4, 1, 0.0)), "trial");
        assert_eq!(invalid_name(asha.on_start(4)), "trial");
        assert_eq!(invalid_name(asha.abandon_start()), "pending_starts");
        assert_eq!(invalid_name(asha.on_failed(4)), "trial");
        asha.next_work()?;
        asha.on_start(4)?;
        asha.next_work()?;
        assert_eq!(invalid_name(asha.on_start(4)), "trial");
        asha.abandon_start()?;

        let mut sha = SyncShaScheduler::new(SuccessiveHalvingPlan::new(2, 1, 3, 3)?);
        assert_eq!(invalid_name(sha.on_start(0)), "trial");
        sha.next_work()?;
        sha.on_start(0)?;
        assert_eq!(sha.report(0, 1, 1.0)?, Decision::Pause);
        assert_eq!(invalid_name(sha.report(0, 2, 1.0)), "trial");
        assert_eq!(invalid_name(sha.report(9, 1, 1.0)), "trial");
        let message = sha
            .report(0, 2, 1.0)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("#0") && message.contains("not running"),
            "{message}"
        );
        Ok(())
    }

    #[test]
    fn sync_sha_runs_the_papers_bracket() -> Result<()> {
        let plan = SuccessiveHalvingPlan::new(81, 1, 81, 3)?;
        let mut sha = SyncShaScheduler::new(plan);
        // The bracket's resumed budget, 81·1 + 27·2 + 9·6 + 3·18 + 1·54, is exactly one run.
        let budget = u64::try_from(plan.bracket().resumed_budget()).unwrap_or(0);
        assert_eq!(budget, 297);
        let out = simulate(&mut sha, 5, budget, None, curve, no_check)?;
        assert_eq!(sha.brackets_completed(), 1);
        assert_eq!(sha.current_rung(), 0, "a new bracket has started");
        assert_eq!(out.started.len(), 81);
        assert!(out.started.iter().all(|&(_, b)| b.is_none()));
        // All starts come before any resume.
        let first_resume = out
            .log
            .iter()
            .position(|e| matches!(e, Event::Work(Work::Resume { .. })));
        let last_start = out
            .log
            .iter()
            .rposition(|e| matches!(e, Event::Work(Work::Start { .. })));
        assert!(last_start < first_resume);
        // The rungs' sizes and steps, and each rung holds the best of the first one.
        let mut by_quality: Vec<u64> = (0..81).collect();
        by_quality.sort_by(|&a, &b| quality(a).total_cmp(&quality(b)));
        for (size, step) in [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)] {
            let reached = out.reached(step);
            assert_eq!(reached.len(), size, "rung at step {step}");
            let best: BTreeSet<u64> = by_quality[..size].iter().copied().collect();
            assert_eq!(reached, best, "rung at step {step}");
        }
        // Resumes go to the next rung's step.
        for e in &out.log {
            if let Event::Work(Work::Resume { to_step, .. }) = e {
                assert!([3, 9, 27, 81].contains(to_step));
            }
        }
        // 80 trials stopped (as paused trials, or on the spot), one completed.
        let stopped_here = out.decisions().filter(|d| d.2 == Decision::Stop).count();
        assert_eq!(sha.take_stopped().len() + stopped_here, 80);
        assert!(sha.take_stopped().is_empty(), "taking drains");
        let completed: Vec<u64> = out
            .decisions()
            .filter(|d| d.2 == Decision::Complete)
            .map(|d| d.0)
            .collect();
        assert_eq!(completed, [by_quality[0]]);
        Ok(())
    }

    #[test]
    fn sync_sha_counts_failures_as_the_worst_results() -> Result<()> {
        let mut sha = SyncShaScheduler::new(SuccessiveHalvingPlan::new(3, 1, 3, 3)?);
        for trial in 0..3 {
            assert_eq!(sha.next_work()?, Work::Start { bracket: None });
            sha.on_start(trial)?;
        }
        assert_eq!(sha.next_work()?, Work::Wait);
        assert_eq!(sha.report(0, 1, 0.5)?, Decision::Pause);
        assert_eq!(sha.report(1, 1, 0.7)?, Decision::Pause);
        assert_eq!(sha.next_work()?, Work::Wait);
        sha.on_failed(2)?;
        assert_eq!(sha.take_stopped(), [1]);
        assert_eq!(
            sha.next_work()?,
            Work::Resume {
                trial: 0,
                to_step: 3
            }
        );
        assert_eq!(sha.next_work()?, Work::Wait);
        assert_eq!(sha.report(0, 3, 0.2)?, Decision::Complete);
        assert_eq!(sha.brackets_completed(), 1);
        assert_eq!(sha.next_work()?, Work::Start { bracket: None });

        // A rung whose trials all fail ends the bracket.
        let mut sha = SyncShaScheduler::new(SuccessiveHalvingPlan::new(2, 1, 9, 3)?);
        for trial in 0..2 {
            sha.next_work()?;
            sha.on_start(trial)?;
            sha.on_failed(trial)?;
        }
        assert_eq!(sha.brackets_completed(), 1);
        assert!(sha.take_stopped().is_empty());
        Ok(())
    }

    #[test]
    fn the_last_reporter_of_a_rung_continues_or_stops_on_the_spot() -> Result<()> {
        let mut sha = SyncShaScheduler::new(SuccessiveHalvingPlan::new(3, 1, 3, 3)?);
        for trial in 0..3 {
            sha.next_work()?;
            sha.on_start(trial)?;
        }
        sha.report(0, 1, 0.5)?;
        sha.report(1, 1, 0.7)?;
        let mut other = sha.clone();
        // The best result completes the rung: promoted, it keeps running.
        assert_eq!(sha.report(2, 1, 0.1)?, Decision::Continue);
        assert_eq!(sha.take_stopped(), [0, 1]);
        assert_eq!(sha.next_work()?, Work::Wait);
        assert_eq!(sha.report(2, 3, 0.0)?, Decision::Complete);
        // The worst completes it: it stops, and the best paused trial is resumed.
        assert_eq!(other.report(2, 1, 0.9)?, Decision::Stop);
        assert_eq!(other.take_stopped(), [1]);
        assert_eq!(
            other.next_work()?,
            Work::Resume {
                trial: 0,
                to_step: 3
            }
        );
        Ok(())
    }

    #[test]
    fn hyperband_visits_every_bracket_with_its_plans_sizes() -> Result<()> {
        let plan = HyperbandPlan::with_max_resource(81, 3)?;
        let mut hb = SyncHyperbandScheduler::new(plan);
        assert_eq!(hb.current_bracket(), 4);
        let budget: u128 = plan.brackets().iter().map(|b| b.resumed_budget()).sum();
        let budget = u64::try_from(budget).unwrap_or(0);
        assert_eq!(budget, 297 + 276 + 279 + 324 + 405);
        let out = simulate(&mut hb, 6, budget, None, curve, no_check)?;
        assert_eq!(hb.brackets_completed(), 5);
        assert_eq!(hb.current_bracket(), 4, "a new iteration starts at s_max");
        // Brackets in order s = 4, …, 0, one after another.
        let order: Vec<u32> = out.started.iter().filter_map(|&(_, b)| b).collect();
        assert!(order.windows(2).all(|w| w[0] >= w[1]), "{order:?}");
        for bracket in plan.brackets() {
            let trials: BTreeSet<u64> = out
                .started
                .iter()
                .filter(|&&(_, b)| b == Some(bracket.s))
                .map(|&(t, _)| t)
                .collect();
            assert_eq!(
                trials.len() as u64,
                bracket.configs(),
                "bracket {}",
                bracket.s
            );
            for rung in &bracket.rungs {
                let reached = out.reached(rung.resource).intersection(&trials).count();
                assert_eq!(reached as u64, rung.configs, "bracket {}", bracket.s);
            }
        }
        let completed = out
            .decisions()
            .filter(|d| d.2 == Decision::Complete)
            .count();
        assert_eq!(completed, 1 + 1 + 1 + 2 + 5);
        Ok(())
    }

    #[test]
    fn asha_keeps_workers_busy_where_synchronous_sha_waits() -> Result<()> {
        const WORKERS: usize = 8;
        const BUDGET: u64 = 10_000;
        let mut asha = AshaScheduler::new(81, 1, 3)?;
        let asha_out = simulate(&mut asha, WORKERS, BUDGET, None, curve, no_check)?;
        let mut sha = SyncShaScheduler::new(SuccessiveHalvingPlan::new(81, 1, 81, 3)?);
        let sha_out = simulate(&mut sha, WORKERS, BUDGET, None, curve, no_check)?;
        let plan = HyperbandPlan::with_max_resource(81, 3)?;
        let mut hb = SyncHyperbandScheduler::new(plan);
        let hb_out = simulate(&mut hb, WORKERS, BUDGET, None, curve, no_check)?;
        let (a, s, h) = (
            asha_out.idle_fraction(),
            sha_out.idle_fraction(),
            hb_out.idle_fraction(),
        );
        println!("idle fraction, {WORKERS} workers, {BUDGET} steps: ASHA {a:.4}, sync SHA {s:.4}, sync Hyperband {h:.4}");
        assert!(a < 0.05, "ASHA idles {a}");
        assert!(s > a + 0.2, "sync SHA idles {s}, ASHA {a}");
        assert!(h > a + 0.1, "sync Hyperband idles {h}, ASHA {a}");
        Ok(())
    }

    /// Runs `fresh` twice — straight through, and through JSON at `save_at` — and compares.
    fn restarts_identically<S: Sched>(fresh: &S, save_at: u64) -> Result<()> {
        let mut straight = fresh.clone();
        let a = simulate(&mut straight, 4, 3_000, None, odd_curve, no_check)?;
        let mut restored = fresh.clone();
        let b = simulate(&mut restored, 4, 3_000, Some(save_at), odd_curve, no_check)?;
        assert!(a.log.len() > 1_000);
        assert_eq!(a.log, b.log);
        assert_eq!(
            serde_json::to_string(&straight)?,
            serde_json::to_string(&restored)?
        );
        Ok(())
    }

    #[test]
    fn state_round_trips_mid_run_and_continues_identically() -> Result<()> {
        let asha = AshaScheduler::new(27, 1, 3)?;
        let sha = SyncShaScheduler::new(SuccessiveHalvingPlan::new(27, 1, 27, 3)?);
        let hb = SyncHyperbandScheduler::new(HyperbandPlan::with_max_resource(27, 3)?);
        for save_at in [1, 57, 400] {
            restarts_identically(&asha, save_at)?;
            restarts_identically(&sha, save_at)?;
            restarts_identically(&hb, save_at)?;
        }
        // Non-finite values survive as text.
        let mut asha = asha;
        for (trial, value) in [(0, f64::NAN), (1, f64::INFINITY), (2, f64::NEG_INFINITY)] {
            asha.next_work()?;
            asha.on_start(trial)?;
            asha.report(trial, 1, value)?;
        }
        let json = serde_json::to_string(&asha)?;
        assert!(
            json.contains("\"nan\"") && json.contains("\"-inf\""),
            "{json}"
        );
        let back: AshaScheduler = serde_json::from_str(&json)?;
        assert_eq!(serde_json::to_string(&back)?, json);
        assert_eq!(back.clone().next_work()?, asha.clone().next_work()?);
        Ok(())
    }
}
