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
//!   [`HyperbandPlan`]: by default its brackets run **one after another** in the paper's order
//!   `s = s_max, …, 0`, then again from `s_max` (a new Hyperband iteration). Brackets are not
//!   interleaved: the sampler sees one bracket at a time and the schedule is the paper's, at
//!   the price of idle workers at each barrier.
//!
//! Both synchronous schedulers can instead let up to `max_concurrent_brackets` brackets
//! overlap (`with_max_concurrent_brackets`): when every running bracket would leave a free
//! worker waiting, the next bracket of the plan's order opens, as HpBandSter's master opens
//! its next iteration (NNI's `exec_mode="parallelism"` and Ray's `HyperBandScheduler` overlap
//! brackets too). Each bracket still promotes exactly what it would promote alone; only the
//! order in which brackets start changes.

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

    /// Reserves a [`Work::Start`] when the first rung still needs configurations; `false`
    /// when it does not (the bracket has no start to give).
    fn next_start(&mut self) -> Result<bool> {
        let rung = self.current()?;
        if self.rung == 0 && (self.members.len() as u64) + self.pending_starts < rung.configs {
            self.pending_starts += 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// The promoted trial to resume next (best first), marked running; `None` when no trial
    /// waits for a worker. (A bracket never has both a start and a resume to give: its first
    /// rung starts configurations, the later ones resume them.)
    fn next_resume(&mut self) -> Result<Option<Work>> {
        let rung = self.current()?;
        Ok(self
            .members
            .iter_mut()
            .find(|m| m.state == MemberState::Queued)
            .map(|member| {
                member.state = MemberState::Running;
                Work::Resume {
                    trial: member.trial,
                    to_step: rung.resource,
                }
            }))
    }

    /// Whether `trial` is in the bracket's current rung.
    fn holds(&self, trial: u64) -> bool {
        self.members.iter().any(|m| m.trial == trial)
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

/// The default bound on the brackets a synchronous scheduler runs at once: one, one bracket
/// after another (the papers' schedule).
fn one_bracket() -> u64 {
    1
}

fn is_one_bracket(n: &u64) -> bool {
    *n == 1
}

/// Checks a bound on the brackets that run at once (shared with
/// [`SchedulerSpec::validate`](super::SchedulerSpec::validate)).
pub(crate) fn check_max_concurrent_brackets(n: u64) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid_argument(
            "max_concurrent_brackets",
            "must be >= 1, got 0; use 1 to run one bracket after another (the papers' \
             schedule) or a larger bound, such as 4, to open the next bracket while the running \
             ones leave workers waiting",
        ));
    }
    Ok(())
}

/// The shared state of the synchronous schedulers: the running brackets, oldest first, and
/// what they stopped.
///
/// Stored as the oldest running bracket (`bracket`) and the newer ones (`newer`, written only
/// while brackets overlap), with the bound written only when it is not 1: a state with one
/// running bracket and the default bound is written exactly as before brackets could
/// overlap, and such stored states load unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SyncState {
    /// The oldest running bracket.
    bracket: BracketRun,
    /// The other running brackets, oldest first; empty unless brackets overlap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    newer: Vec<BracketRun>,
    /// Paused trials that a judged rung did not promote, not yet taken.
    stopped: Vec<u64>,
    /// How many brackets have finished.
    brackets_completed: u64,
    /// The most brackets that run at once (1: one after another).
    #[serde(default = "one_bracket", skip_serializing_if = "is_one_bracket")]
    max_concurrent_brackets: u64,
}

impl SyncState {
    fn new(first: BracketRun) -> Self {
        SyncState {
            bracket: first,
            newer: Vec::new(),
            stopped: Vec::new(),
            brackets_completed: 0,
            max_concurrent_brackets: one_bracket(),
        }
    }

    /// The running brackets, oldest first.
    fn running(&self) -> impl Iterator<Item = &BracketRun> {
        std::iter::once(&self.bracket).chain(&self.newer)
    }

    fn running_mut(&mut self) -> impl Iterator<Item = &mut BracketRun> {
        std::iter::once(&mut self.bracket).chain(&mut self.newer)
    }

    /// Resume the oldest bracket's next promoted trial; else start a configuration in the
    /// oldest bracket whose first rung needs one; else, below the bound, open the next bracket
    /// (`open(k)` builds the `k`-th bracket opened, counting from 0: every bracket opened has
    /// finished or is running) and start one there; else wait.
    fn next_work(&mut self, open: impl FnOnce(u64) -> BracketRun) -> Result<Work> {
        if self.max_concurrent_brackets == 0 {
            return Err(corrupt("max_concurrent_brackets is 0"));
        }
        for bracket in self.running_mut() {
            if let Some(work) = bracket.next_resume()? {
                return Ok(work);
            }
        }
        for bracket in self.running_mut() {
            if bracket.next_start()? {
                return Ok(Work::Start {
                    bracket: Some(bracket.s),
                });
            }
        }
        let running = self.newer.len() as u64 + 1;
        if running < self.max_concurrent_brackets {
            let mut bracket = open(self.brackets_completed.saturating_add(running));
            if bracket.next_start()? {
                let s = bracket.s;
                self.newer.push(bracket);
                return Ok(Work::Start { bracket: Some(s) });
            }
        }
        Ok(Work::Wait)
    }

    /// Registers a started trial in the oldest bracket with a pending start.
    fn on_start(&mut self, trial: u64) -> Result<()> {
        let Some(i) = self
            .running()
            .position(|b| b.pending_starts > 0 && b.rung == 0)
        else {
            return Err(no_pending_start(trial));
        };
        if self.running().any(|b| b.holds(trial)) {
            return Err(already_known(trial));
        }
        match self.running_mut().nth(i) {
            Some(bracket) => bracket.on_start(trial),
            None => Err(no_pending_start(trial)),
        }
    }

    /// Releases a pending start of the newest bracket that has one.
    fn abandon_start(&mut self) -> Result<()> {
        match self.running_mut().filter(|b| b.pending_starts > 0).last() {
            Some(bracket) => bracket.abandon_start(),
            None => Err(no_start_to_abandon()),
        }
    }

    /// Runs `f` on the running bracket that holds `trial` (the oldest one when none does, so
    /// that the error is the bracket's own). A bracket that finishes leaves the running ones;
    /// when none is left, `open(k)` builds the next (see [`next_work`](Self::next_work)).
    fn apply<T>(
        &mut self,
        trial: u64,
        f: impl FnOnce(&mut BracketRun, &mut Vec<u64>) -> Result<(T, bool)>,
        open: impl FnOnce(u64) -> BracketRun,
    ) -> Result<T> {
        let i = self.running().position(|b| b.holds(trial)).unwrap_or(0);
        let bracket = match i.checked_sub(1) {
            None => &mut self.bracket,
            Some(j) => self
                .newer
                .get_mut(j)
                .ok_or_else(|| corrupt("a running bracket vanished"))?,
        };
        let (out, finished) = f(bracket, &mut self.stopped)?;
        if finished {
            self.brackets_completed = self.brackets_completed.saturating_add(1);
            match i.checked_sub(1) {
                Some(j) => {
                    self.newer.remove(j);
                }
                None if self.newer.is_empty() => self.bracket = open(self.brackets_completed),
                None => self.bracket = self.newer.remove(0),
            }
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
///
/// # Overlapping brackets
/// By default one bracket runs at a time. With
/// [`with_max_concurrent_brackets(n)`](Self::with_max_concurrent_brackets), `n > 1`, a free
/// worker that every running bracket would leave waiting opens the next bracket instead, as
/// long as fewer than `n` run — HpBandSter's master (`hpbandster/core/master.py`,
/// `Master.run`) does the same with its *iterations*: it asks the unfinished ones for a job,
/// oldest first, and starts the next iteration when none has one. A free worker gets, in this
/// order: the next promoted trial of the oldest bracket that has one, a new configuration
/// for the oldest bracket whose first rung needs one, a new configuration for a newly opened
/// bracket, or [`Work::Wait`]. (A bracket never offers both a start and a resume; the two
/// passes matter only after an [`abandon_start`](Self::abandon_start) gave an older bracket
/// back a start, when a newer bracket's resume goes first.) Every bracket is judged on its own
/// trials only, so it promotes exactly what it would promote running alone with the same
/// values; brackets finish independently, reports and failures go to the bracket the trial
/// was started in, and [`take_stopped`](Self::take_stopped) collects from all of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncShaScheduler {
    plan: SuccessiveHalvingPlan,
    state: SyncState,
}

impl SyncShaScheduler {
    /// A scheduler that runs `plan`'s bracket over and over, one bracket at a time.
    pub fn new(plan: SuccessiveHalvingPlan) -> Self {
        SyncShaScheduler {
            state: SyncState::new(Self::bracket_of(&plan)),
            plan,
        }
    }

    /// The same scheduler with at most `n ≥ 1` brackets running at once (1, the default, is
    /// one after another); see [Overlapping brackets](Self#overlapping-brackets). Meant for a
    /// new scheduler; lowered below the brackets running now, it only keeps new ones from
    /// opening until fewer run.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `max_concurrent_brackets` when `n` is 0.
    pub fn with_max_concurrent_brackets(mut self, n: u64) -> Result<Self> {
        check_max_concurrent_brackets(n)?;
        self.state.max_concurrent_brackets = n;
        Ok(self)
    }

    fn bracket_of(plan: &SuccessiveHalvingPlan) -> BracketRun {
        let bracket = plan.bracket();
        BracketRun::new(bracket.s, plan.eta(), bracket.rungs)
    }

    /// The plan.
    pub fn plan(&self) -> &SuccessiveHalvingPlan {
        &self.plan
    }

    /// The most brackets that run at once.
    pub fn max_concurrent_brackets(&self) -> u64 {
        self.state.max_concurrent_brackets
    }

    /// The index of the current rung (0 is the first) of the oldest running bracket — the
    /// only one unless brackets overlap.
    pub fn current_rung(&self) -> usize {
        self.state.bracket.rung
    }

    /// The current rung of every running bracket, oldest first.
    pub fn current_rungs(&self) -> Vec<usize> {
        self.state.running().map(|b| b.rung).collect()
    }

    /// How many brackets have finished (with overlap, not necessarily in the order they
    /// were opened).
    pub fn brackets_completed(&self) -> u64 {
        self.state.brackets_completed
    }

    /// Start, resume or wait; see the [type documentation](Self).
    ///
    /// # Errors
    /// Only for a corrupted stored state.
    pub fn next_work(&mut self) -> Result<Work> {
        let plan = self.plan;
        Ok(match self.state.next_work(|_| Self::bracket_of(&plan))? {
            Work::Start { .. } => Work::Start { bracket: None },
            other => other,
        })
    }

    /// Registers the trial created for a [`Work::Start`] in the oldest bracket with a start
    /// pending. With overlapping brackets and several workers starting at once, that need not
    /// be the bracket whose [`Work::Start`] this worker got (the call does not say): every
    /// bracket still gets exactly its number of configurations, but the `bracket` a
    /// Hyperband start carried can then name another running bracket.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when no start is pending or the trial is
    /// already in a rung.
    pub fn on_start(&mut self, trial: u64) -> Result<()> {
        self.state.on_start(trial)
    }

    /// Releases a [`Work::Start`] whose worker gave up before creating its trial (the newest
    /// bracket's, when several have one pending).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `pending_starts` when none is pending.
    pub fn abandon_start(&mut self) -> Result<()> {
        self.state.abandon_start()
    }

    /// A running trial's value at `step`; see the [type documentation](Self).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when it is not a running trial of the
    /// current rung of a running bracket.
    pub fn report(&mut self, trial: u64, step: u64, value: f64) -> Result<Decision> {
        let plan = self.plan;
        self.state.apply(
            trial,
            |b, stopped| b.report(trial, step, value, stopped),
            |_| Self::bracket_of(&plan),
        )
    }

    /// Marks a trial of a current rung failed (crashed, or its checkpoint is lost): it ranks
    /// last and is never promoted. This may complete the rung.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when it is not in the current rung of a
    /// running bracket.
    pub fn on_failed(&mut self, trial: u64) -> Result<()> {
        let plan = self.plan;
        self.state.apply(
            trial,
            |b, stopped| Ok(((), b.on_failed(trial, stopped)?)),
            |_| Self::bracket_of(&plan),
        )
    }

    /// Takes the paused trials that judged rungs (of every bracket) did not promote, in the
    /// order they were stopped: the caller marks them pruned and may delete their
    /// checkpoints.
    pub fn take_stopped(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.state.stopped)
    }
}

/// Synchronous Hyperband (Li et al., "Hyperband: a novel bandit-based approach to
/// hyperparameter optimization", JMLR 18(185), 2017, Algorithm 1) on a [`HyperbandPlan`], with
/// pause and resume.
///
/// The brackets are opened in the paper's order `s = s_max, …, 0`, then again from `s_max`;
/// each is synchronous successive halving with the plan's sizes and steps, decided exactly as
/// [`SyncShaScheduler`] decides. [`Work::Start`] carries the bracket `s`, so the sampler can
/// be shown that bracket's trials only. By default the brackets run **one after another, not
/// interleaved**; with [`with_max_concurrent_brackets`](Self::with_max_concurrent_brackets)
/// up to `n` overlap, as HpBandSter's iterations do — see
/// [`SyncShaScheduler`'s Overlapping brackets](SyncShaScheduler#overlapping-brackets).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncHyperbandScheduler {
    plan: HyperbandPlan,
    state: SyncState,
}

impl SyncHyperbandScheduler {
    /// A scheduler that runs `plan`'s brackets from `s_max` down to 0, over and over, one at a
    /// time.
    pub fn new(plan: HyperbandPlan) -> Self {
        SyncHyperbandScheduler {
            state: SyncState::new(Self::opened(&plan, 0)),
            plan,
        }
    }

    /// The same scheduler with at most `n ≥ 1` brackets running at once (1, the default, is
    /// one after another); see
    /// [`SyncShaScheduler::with_max_concurrent_brackets`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `max_concurrent_brackets` when `n` is 0.
    pub fn with_max_concurrent_brackets(mut self, n: u64) -> Result<Self> {
        check_max_concurrent_brackets(n)?;
        self.state.max_concurrent_brackets = n;
        Ok(self)
    }

    /// Bracket `s` of `plan` (`s ≤ s_max`, so never empty).
    fn bracket_of(plan: &HyperbandPlan, s: u32) -> BracketRun {
        let rungs = plan.bracket(s).map(|b| b.rungs).unwrap_or_default();
        BracketRun::new(s, plan.eta(), rungs)
    }

    /// The `k`-th bracket opened, counting from 0: `s = s_max − (k mod (s_max + 1))`, the
    /// paper's order over and over.
    fn opened(plan: &HyperbandPlan, k: u64) -> BracketRun {
        let s_max = plan.s_max();
        let offset = u32::try_from(k % (u64::from(s_max) + 1)).unwrap_or(0);
        Self::bracket_of(plan, s_max.saturating_sub(offset))
    }

    /// The plan.
    pub fn plan(&self) -> &HyperbandPlan {
        &self.plan
    }

    /// The most brackets that run at once.
    pub fn max_concurrent_brackets(&self) -> u64 {
        self.state.max_concurrent_brackets
    }

    /// The `s` of the oldest running bracket — the only one unless brackets overlap.
    pub fn current_bracket(&self) -> u32 {
        self.state.bracket.s
    }

    /// The index of the current rung (0 is the first) of the oldest running bracket.
    pub fn current_rung(&self) -> usize {
        self.state.bracket.rung
    }

    /// `(s, current rung)` of every running bracket, oldest first.
    pub fn running_brackets(&self) -> Vec<(u32, usize)> {
        self.state.running().map(|b| (b.s, b.rung)).collect()
    }

    /// How many brackets have finished (all iterations together; with overlap, not
    /// necessarily in the order they were opened).
    pub fn brackets_completed(&self) -> u64 {
        self.state.brackets_completed
    }

    /// Start (in the oldest bracket that needs a configuration, or a newly opened one),
    /// resume or wait; see [`SyncShaScheduler::next_work`].
    ///
    /// # Errors
    /// Only for a corrupted stored state.
    pub fn next_work(&mut self) -> Result<Work> {
        let plan = self.plan;
        self.state.next_work(|k| Self::opened(&plan, k))
    }

    /// Registers the trial created for a [`Work::Start`]; see
    /// [`SyncShaScheduler::on_start`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when no start is pending or the trial is
    /// already in a rung.
    pub fn on_start(&mut self, trial: u64) -> Result<()> {
        self.state.on_start(trial)
    }

    /// Releases a [`Work::Start`] whose worker gave up before creating its trial; see
    /// [`SyncShaScheduler::abandon_start`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `pending_starts` when none is pending.
    pub fn abandon_start(&mut self) -> Result<()> {
        self.state.abandon_start()
    }

    /// A running trial's value at `step`; see [`SyncShaScheduler::report`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when it is not a running trial of the
    /// current rung of a running bracket.
    pub fn report(&mut self, trial: u64, step: u64, value: f64) -> Result<Decision> {
        let plan = self.plan;
        self.state.apply(
            trial,
            |b, stopped| b.report(trial, step, value, stopped),
            |k| Self::opened(&plan, k),
        )
    }

    /// Marks a trial of a current rung failed; see [`SyncShaScheduler::on_failed`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when it is not in the current rung of a
    /// running bracket.
    pub fn on_failed(&mut self, trial: u64) -> Result<()> {
        let plan = self.plan;
        self.state.apply(
            trial,
            |b, stopped| Ok(((), b.on_failed(trial, stopped)?)),
            |k| Self::opened(&plan, k),
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

    // -----------------------------------------------------------------------------------------
    // Overlapping brackets
    // -----------------------------------------------------------------------------------------

    /// What a free worker may get from `before`, a synchronous state, per the overlap rules:
    /// the oldest bracket's queued resume, else the oldest bracket's start, else (below the
    /// bound) a start in the bracket opened next (`s_next`), else a wait.
    fn check_overlap_order(before: &SyncState, work: &Work, s_next: u32) {
        let running: Vec<&BracketRun> = before.running().collect();
        let resume = running.iter().find_map(|b| {
            b.members
                .iter()
                .find(|m| m.state == MemberState::Queued)
                .map(|m| (m.trial, b.rungs[b.rung].resource))
        });
        let start = running.iter().find(|b| {
            b.rung == 0 && b.members.len() as u64 + b.pending_starts < b.rungs[0].configs
        });
        let room = (running.len() as u64) < before.max_concurrent_brackets;
        match (*work, resume, start) {
            (Work::Resume { trial, to_step }, Some(expected), _) => {
                assert_eq!(
                    (trial, to_step),
                    expected,
                    "not the oldest bracket's resume"
                );
            }
            (Work::Start { bracket }, None, Some(b)) => {
                assert!(bracket.is_none() || bracket == Some(b.s), "{bracket:?}");
            }
            (Work::Start { bracket }, None, None) => {
                assert!(room, "opened a bracket beyond the bound");
                assert!(bracket.is_none() || bracket == Some(s_next), "{bracket:?}");
            }
            (Work::Wait, None, None) => assert!(!room, "waited with room for a bracket"),
            other => panic!("wrong order: {other:?}"),
        }
    }

    /// Runs one bracket alone — `plan`'s, with `trials` as its configurations — on one worker,
    /// reporting [`curve`] at every rung: the trials that reached each rung.
    fn alone(plan: SuccessiveHalvingPlan, trials: &[u64]) -> Result<Vec<BTreeSet<u64>>> {
        let resources: Vec<u64> = plan.bracket().rungs.iter().map(|r| r.resource).collect();
        let mut sha = SyncShaScheduler::new(plan);
        let mut reached = vec![BTreeSet::new(); resources.len()];
        let mut at: BTreeMap<u64, u64> = BTreeMap::new();
        let mut fresh = trials.iter().copied();
        while sha.brackets_completed() == 0 {
            let trial = match sha.next_work()? {
                Work::Start { .. } => {
                    let Some(trial) = fresh.next() else {
                        panic!("the bracket wants more than {} trials", trials.len());
                    };
                    sha.on_start(trial)?;
                    trial
                }
                Work::Resume { trial, .. } => trial,
                other => panic!("one worker never waits, got {other:?}"),
            };
            let from = at.get(&trial).copied().unwrap_or(0);
            for (i, &r) in resources.iter().enumerate().filter(|&(_, &r)| r > from) {
                reached[i].insert(trial);
                at.insert(trial, r);
                if sha.report(trial, r, curve(trial, r))? != Decision::Continue {
                    break;
                }
            }
        }
        Ok(reached)
    }

    #[test]
    fn max_concurrent_brackets_is_validated_and_defaults_to_one() -> Result<()> {
        let plan = HyperbandPlan::with_max_resource(27, 3)?;
        let sha_plan = SuccessiveHalvingPlan::new(9, 1, 9, 3)?;
        assert_eq!(
            SyncHyperbandScheduler::new(plan).max_concurrent_brackets(),
            1
        );
        assert_eq!(SyncShaScheduler::new(sha_plan).max_concurrent_brackets(), 1);
        assert_eq!(
            invalid_name(SyncHyperbandScheduler::new(plan).with_max_concurrent_brackets(0)),
            "max_concurrent_brackets"
        );
        assert_eq!(
            invalid_name(SyncShaScheduler::new(sha_plan).with_max_concurrent_brackets(0)),
            "max_concurrent_brackets"
        );
        let message = SyncShaScheduler::new(sha_plan)
            .with_max_concurrent_brackets(0)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("got 0") && message.contains(">= 1"),
            "{message}"
        );
        let hb = SyncHyperbandScheduler::new(plan).with_max_concurrent_brackets(3)?;
        assert_eq!(hb.max_concurrent_brackets(), 3);
        // With a bound of 1 the scheduler is today's, field for field.
        assert_eq!(
            SyncHyperbandScheduler::new(plan).with_max_concurrent_brackets(1)?,
            SyncHyperbandScheduler::new(plan)
        );
        Ok(())
    }

    #[test]
    fn overlapping_brackets_route_reports_and_failures_to_their_own_bracket() -> Result<()> {
        // Brackets of 3 configurations at step 1, the best one goes on to step 3.
        let plan = SuccessiveHalvingPlan::new(3, 1, 3, 3)?;
        let mut sha = SyncShaScheduler::new(plan).with_max_concurrent_brackets(2)?;
        for trial in 0..3 {
            assert_eq!(sha.next_work()?, Work::Start { bracket: None });
            sha.on_start(trial)?;
        }
        // The first bracket would wait: the second one opens.
        assert_eq!(sha.current_rungs(), [0]);
        assert_eq!(sha.next_work()?, Work::Start { bracket: None });
        sha.on_start(3)?;
        assert_eq!(sha.current_rungs(), [0, 0]);
        assert_eq!(invalid_name(sha.on_start(4)), "trial");
        assert_eq!(sha.report(0, 1, 0.5)?, Decision::Pause);
        assert_eq!(sha.report(1, 1, 0.7)?, Decision::Pause);
        assert_eq!(
            sha.report(3, 1, 0.1)?,
            Decision::Pause,
            "#3 is the second's"
        );
        // #2's failure completes the first bracket's rung: #0 goes on, #1 stops.
        sha.on_failed(2)?;
        assert_eq!(sha.current_rungs(), [1, 0]);
        assert_eq!(sha.take_stopped(), [1]);
        // A resume comes before a start, the older bracket before the newer.
        assert_eq!(
            sha.next_work()?,
            Work::Resume {
                trial: 0,
                to_step: 3
            }
        );
        for trial in [4, 5] {
            assert_eq!(sha.next_work()?, Work::Start { bracket: None });
            sha.on_start(trial)?;
        }
        // Two brackets run and neither has work: the bound holds.
        assert_eq!(sha.next_work()?, Work::Wait);
        assert_eq!(sha.report(4, 1, 0.9)?, Decision::Pause);
        // The second bracket's rung completes with #5 (the worst): it stops, #3 is queued.
        assert_eq!(sha.report(5, 1, 0.95)?, Decision::Stop);
        assert_eq!(sha.take_stopped(), [4]);
        assert_eq!(sha.current_rungs(), [1, 1]);
        assert_eq!(
            sha.next_work()?,
            Work::Resume {
                trial: 3,
                to_step: 3
            }
        );
        // The newer bracket finishes first; the older one still runs.
        assert_eq!(sha.report(3, 3, 0.05)?, Decision::Complete);
        assert_eq!(sha.brackets_completed(), 1);
        assert_eq!(sha.current_rungs(), [1]);
        assert_eq!(sha.next_work()?, Work::Start { bracket: None });
        sha.on_start(6)?;
        assert_eq!(sha.current_rungs(), [1, 0]);
        assert_eq!(sha.report(0, 3, 0.4)?, Decision::Complete);
        assert_eq!(sha.brackets_completed(), 2);
        assert_eq!(sha.current_rungs(), [0], "the newest is now the oldest");
        assert_eq!(invalid_name(sha.report(0, 4, 0.4)), "trial");
        // abandon_start releases the newest bracket's pending start.
        assert_eq!(sha.next_work()?, Work::Start { bracket: None });
        sha.abandon_start()?;
        assert_eq!(invalid_name(sha.abandon_start()), "pending_starts");
        Ok(())
    }

    #[test]
    fn hyperband_opens_brackets_in_the_plans_order() -> Result<()> {
        // R = 9, η = 3: brackets s = 2 (9 configurations), 1 (5), 0 (3), then 2 again.
        let plan = HyperbandPlan::with_max_resource(9, 3)?;
        let mut hb = SyncHyperbandScheduler::new(plan).with_max_concurrent_brackets(4)?;
        let mut starts = Vec::new();
        for trial in 0..20 {
            let work = hb.next_work()?;
            let Work::Start { bracket: Some(s) } = work else {
                panic!("expected a start, got {work:?}");
            };
            starts.push(s);
            hb.on_start(trial)?;
        }
        let expected: Vec<u32> = [(2, 9), (1, 5), (0, 3), (2, 3)]
            .iter()
            .flat_map(|&(s, n)| std::iter::repeat_n(s, n))
            .collect();
        assert_eq!(starts, expected);
        assert_eq!(hb.running_brackets(), [(2, 0), (1, 0), (0, 0), (2, 0)]);
        assert_eq!(hb.current_bracket(), 2);
        // The fourth bracket still wants 6 configurations; then the bound holds.
        for trial in 20..26 {
            assert_eq!(hb.next_work()?, Work::Start { bracket: Some(2) });
            hb.on_start(trial)?;
        }
        assert_eq!(hb.next_work()?, Work::Wait);
        // The s = 0 bracket (trials 14–16) finishes first; the next to open is s = 1.
        for trial in 14..17 {
            assert_eq!(hb.report(trial, 9, 0.5)?, Decision::Complete);
        }
        assert_eq!(hb.brackets_completed(), 1);
        assert_eq!(hb.running_brackets(), [(2, 0), (1, 0), (2, 0)]);
        assert_eq!(hb.next_work()?, Work::Start { bracket: Some(1) });
        Ok(())
    }

    #[test]
    fn overlapping_brackets_cut_idle_time() -> Result<()> {
        const WORKERS: usize = 8;
        const BUDGET: u64 = 10_000;
        let mut idle = Vec::new();
        for n in [1, 2, 4] {
            let mut sha = SyncShaScheduler::new(SuccessiveHalvingPlan::new(81, 1, 81, 3)?)
                .with_max_concurrent_brackets(n)?;
            let sha_out = simulate(&mut sha, WORKERS, BUDGET, None, curve, no_check)?;
            let plan = HyperbandPlan::with_max_resource(81, 3)?;
            let mut hb = SyncHyperbandScheduler::new(plan).with_max_concurrent_brackets(n)?;
            let hb_out = simulate(&mut hb, WORKERS, BUDGET, None, curve, no_check)?;
            let (s, h) = (sha_out.idle_fraction(), hb_out.idle_fraction());
            println!(
                "idle fraction, {WORKERS} workers, {BUDGET} steps, at most {n} bracket(s) at \
                 once: sync SHA {s:.4} ({} brackets done), sync Hyperband {h:.4} ({} done)",
                sha.brackets_completed(),
                hb.brackets_completed()
            );
            idle.push((s, h));
        }
        let ((sha_1, hb_1), (sha_4, hb_4)) = (idle[0], idle[2]);
        // Measured (unit step costs): SHA 0.636 → 0.287 (2) → 0.000 (4), Hyperband
        // 0.565 → 0.264 → 0.000, with as many brackets finished (32 vs 33, 30 vs 31).
        assert!(
            sha_4 < sha_1 / 4.0,
            "SHA idles {sha_4} with 4, {sha_1} with 1"
        );
        assert!(
            hb_4 < hb_1 / 4.0,
            "Hyperband idles {hb_4} with 4, {hb_1} with 1"
        );
        assert!(sha_4 < 0.1 && hb_4 < 0.1, "{sha_4} {hb_4}");
        assert!(idle[1].0 < sha_1 && idle[1].1 < hb_1, "{idle:?}");
        Ok(())
    }

    #[test]
    fn each_overlapping_bracket_promotes_what_it_would_alone() -> Result<()> {
        let plan = HyperbandPlan::with_max_resource(81, 3)?;
        let bound = 4;
        let mut hb = SyncHyperbandScheduler::new(plan).with_max_concurrent_brackets(bound)?;
        let mut most_running = 0;
        let out = simulate(&mut hb, 8, 8_000, None, curve, |before, work| {
            let opened = before.state.brackets_completed + before.state.newer.len() as u64 + 1;
            let s_next = SyncHyperbandScheduler::opened(&plan, opened).s;
            check_overlap_order(&before.state, work, s_next);
            most_running = most_running.max(before.state.newer.len() + 1);
        })?;
        assert_eq!(
            most_running as u64, bound,
            "the brackets overlapped up to the bound"
        );
        // Starts come bracket by bracket in the plan's order: the k-th bracket opened is
        // s = s_max − k mod 5 and takes the next n_s trials.
        let mut started = out.started.iter();
        let mut finished = 0;
        for k in 0u64.. {
            let s = 4 - (k % 5) as u32;
            let Some(sh) = plan.successive_halving(s) else {
                panic!("no bracket {s}");
            };
            let bracket = sh.bracket();
            let trials: Vec<u64> = started
                .by_ref()
                .take(bracket.configs() as usize)
                .map(|&(t, b)| {
                    assert_eq!(b, Some(s), "trial #{t}");
                    t
                })
                .collect();
            if (trials.len() as u64) < bracket.configs() {
                break; // The budget ran out while this bracket was starting.
            }
            let expected = alone(sh, &trials)?;
            let ours: BTreeSet<u64> = trials.iter().copied().collect();
            let complete = out
                .decisions()
                .filter(|&(t, _, d)| d == Decision::Complete && ours.contains(&t))
                .count() as u64;
            let done = complete == bracket.rungs[bracket.rungs.len() - 1].configs;
            for (i, rung) in bracket.rungs.iter().enumerate() {
                let reached: BTreeSet<u64> = out
                    .reached(rung.resource)
                    .intersection(&ours)
                    .copied()
                    .collect();
                if done {
                    assert_eq!(reached, expected[i], "bracket #{k} (s = {s}), rung {i}");
                    assert_eq!(reached.len() as u64, rung.configs);
                } else {
                    assert!(reached.is_subset(&expected[i]), "bracket #{k}, rung {i}");
                }
            }
            finished += u64::from(done);
        }
        assert!(finished >= 10, "{finished} brackets finished");
        assert_eq!(finished, hb.brackets_completed());
        Ok(())
    }

    #[test]
    fn overlapping_states_round_trip_mid_run() -> Result<()> {
        let sha = SyncShaScheduler::new(SuccessiveHalvingPlan::new(27, 1, 27, 3)?)
            .with_max_concurrent_brackets(3)?;
        let hb = SyncHyperbandScheduler::new(HyperbandPlan::with_max_resource(27, 3)?)
            .with_max_concurrent_brackets(4)?;
        for save_at in [1, 57, 400] {
            restarts_identically(&sha, save_at)?;
            restarts_identically(&hb, save_at)?;
        }
        // Mid-run, with brackets overlapping: the state is written with its newer brackets
        // and its bound, and reads back equal.
        let mut hb = hb;
        simulate(&mut hb, 8, 300, None, odd_curve, no_check)?;
        assert!(
            hb.running_brackets().len() > 1,
            "{:?}",
            hb.running_brackets()
        );
        let json = serde_json::to_string(&hb)?;
        assert!(
            json.contains("\"newer\"") && json.contains("\"max_concurrent_brackets\":4"),
            "{json}"
        );
        let back: SyncHyperbandScheduler = serde_json::from_str(&json)?;
        assert_eq!(back, hb);
        assert_eq!(serde_json::to_string(&back)?, json);
        Ok(())
    }

    #[test]
    fn a_state_stored_before_brackets_could_overlap_still_loads() -> Result<()> {
        // Hyperband, R = 9, η = 3, as the scheduler stored it when one bracket ran at a time:
        // one bracket finished, the second (s = 1: 5 configurations at step 3, one at 9)
        // half-way through its first rung.
        let old = concat!(
            r#"{"plan":{"max_resource":9,"min_resource":1,"eta":3,"rounding":"ceil"},"#,
            r#""state":{"bracket":{"s":1,"eta":3,"rungs":[{"configs":5,"resource":3},"#,
            r#"{"configs":1,"resource":9}],"rung":0,"pending_starts":1,"members":["#,
            r#"{"trial":9,"state":{"reported":{"value":0.25}}},{"trial":10,"state":"failed"},"#,
            r#"{"trial":11,"state":{"reported":{"value":"nan"}}},"#,
            r#"{"trial":12,"state":"running"}]},"stopped":[7],"brackets_completed":1}}"#
        );
        let mut hb: SyncHyperbandScheduler = serde_json::from_str(old)?;
        assert_eq!(hb.max_concurrent_brackets(), 1);
        assert_eq!(hb.running_brackets(), [(1, 0)]);
        // A state with one bracket and the default bound is written exactly as before.
        assert_eq!(serde_json::to_string(&hb)?, old);
        hb.on_start(13)?;
        assert_eq!(hb.next_work()?, Work::Wait);
        assert_eq!(hb.report(12, 3, 0.3)?, Decision::Pause);
        assert_eq!(
            hb.report(13, 3, 0.1)?,
            Decision::Continue,
            "the best goes on"
        );
        assert_eq!(hb.take_stopped(), [7, 9, 11, 12]);
        assert_eq!(hb.report(13, 9, 0.05)?, Decision::Complete);
        assert_eq!(hb.brackets_completed(), 2);
        assert_eq!(hb.next_work()?, Work::Start { bracket: Some(0) });

        let old_sha = concat!(
            r#"{"plan":{"n_configs":3,"min_resource":1,"max_resource":3,"eta":3},"#,
            r#""state":{"bracket":{"s":1,"eta":3,"rungs":[{"configs":3,"resource":1},"#,
            r#"{"configs":1,"resource":3}],"rung":1,"pending_starts":0,"members":["#,
            r#"{"trial":4,"state":"queued"}]},"stopped":[],"brackets_completed":1}}"#
        );
        let mut sha: SyncShaScheduler = serde_json::from_str(old_sha)?;
        assert_eq!(serde_json::to_string(&sha)?, old_sha);
        assert_eq!(
            sha.next_work()?,
            Work::Resume {
                trial: 4,
                to_step: 3
            }
        );
        assert_eq!(sha.next_work()?, Work::Wait);
        Ok(())
    }

    #[test]
    fn corrupt_overlapping_states_are_errors() -> Result<()> {
        let plan = SuccessiveHalvingPlan::new(3, 1, 3, 3)?;
        let mut sha = SyncShaScheduler::new(plan).with_max_concurrent_brackets(2)?;
        for trial in 0..4 {
            sha.next_work()?;
            sha.on_start(trial)?;
        }
        let json = serde_json::to_string(&sha)?;
        // A bound of 0.
        let zero = json.replace(
            "\"max_concurrent_brackets\":2",
            "\"max_concurrent_brackets\":0",
        );
        assert_ne!(zero, json);
        let mut bad: SyncShaScheduler = serde_json::from_str(&zero)?;
        assert_eq!(invalid_name(bad.next_work()), "state");
        // A newer bracket whose current rung does not exist.
        let past = json.replace(
            "\"rung\":0,\"pending_starts\":0,\"members\":[{\"trial\":3",
            "\"rung\":7,\"pending_starts\":0,\"members\":[{\"trial\":3",
        );
        assert_ne!(past, json);
        let mut bad: SyncShaScheduler = serde_json::from_str(&past)?;
        assert_eq!(invalid_name(bad.next_work()), "state");
        assert_eq!(invalid_name(bad.report(3, 1, 0.0)), "state");
        Ok(())
    }
}
