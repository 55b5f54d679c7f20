//! Population Based Training's schedule — which member trains next, when a member checkpoints,
//! pauses or copies another — as a pure, deterministic, serializable state machine.
//!
//! Population Based Training (Jaderberg, Dalibard, Osindero, Czarnecki, Donahue, Razavi,
//! Vinyals, Green, Dunning, Simonyan, Fernando & Kavukcuoglu, "Population based training of
//! neural networks", arXiv:1711.09846, 2017) trains a fixed-size population; every so often a
//! member that is "ready" compares itself with the others, and a member of the bottom
//! quantile copies a member of the top quantile (*exploit*) and perturbs the copied
//! hyperparameters (*explore*). [`PbtScheduler`] runs the paper's **asynchronous** variant with
//! the rules of Ray Tune's `PopulationBasedTraining` (`ray/tune/schedulers/pbt.py`,
//! `synch=False`); the operators themselves and their defaults are [`pbt`](super::pbt)'s
//! [`exploit`] and [`explore`](super::pbt::explore), configured by [`PbtConfig`] (Ray's
//! defaults: quantiles of 25%, resampling with probability 0.25, factors 1.2 and 0.8).
//!
//! # Slots and members
//! The population has `population_size` **slots**. Each holds one **member**: a trial. A
//! trial's parameters never change in ferrotune (see the design notes: "pause and resume is
//! one mechanism"), so when a member exploits, its trial ends and a *new* trial — the
//! **child**, with parameters explored from the winner's, resuming from the winner's
//! checkpoint — takes its slot ([`PbtScheduler::on_child`]). Trials are identified by their
//! study-wide numbers.
//!
//! # Steps and boundaries
//! A member reports its score at steps 1, 2, … (a child from the step after the one it resumed
//! from); it may skip steps, but not a **boundary**: the multiples of `interval` below
//! `max_step`, and `max_step` itself. Ray calls `interval` the `perturbation_interval`; the
//! paper calls a member at a boundary "ready". Between boundaries the answer is
//! [`PbtDecision::Continue`]; at `max_step` it is [`PbtDecision::Complete`] (the score is
//! recorded, nothing is copied any more). At any other boundary the member's score is
//! recorded, and:
//!
//! 1. The slots are **ranked** by the latest boundary score of their current members (a slot
//!    whose member has no score yet — it has not reached a boundary since it started — is
//!    left out; completed members stay in, so the best finished model can still be copied —
//!    Ray leaves finished trials out).
//!    [`exploit`] pairs each member of the bottom quantile with one of the top quantile, drawn
//!    with the caller's [`TrialRng`]; a NaN score ranks last in either direction; with fewer
//!    than two scores nobody exploits.
//! 2. If the reporter is a loser and its winner has a **saved** checkpoint
//!    ([`PbtScheduler::on_saved`]; a checkpoint is copyable only once it is on disk), the
//!    answer is [`PbtDecision::Exploit`] with the winner's latest saved step — with one
//!    exception, the *rewind rule* below.
//! 3. Otherwise the member **checkpoints** ([`PbtDecision::Checkpoint`]) so that others may
//!    copy it, and **pauses** if another slot is *behind* it: not started (and no start is
//!    pending for it), or paused at a lower step. So with fewer workers than members the
//!    members take turns, the one furthest behind first, and with a worker per member nobody
//!    ever pauses. (Ray pauses whenever any trial waits, and resumes the one with the least
//!    training time, `choose_trial_to_run`; pausing only for members that are behind avoids
//!    pausing for members that are ahead.)
//!
//! # Rewinds
//! A winner's latest checkpoint may be *behind* the loser (the winner reported the boundary
//! later, or is slower): the child then repeats steps, as in Ray, where an exploited trial
//! takes over the winner's training time. Repeated without bound, that can loop forever —
//! with one worker, a member that keeps losing would keep copying a paused winner's checkpoint
//! and the winner would never run again; with an objective that gets worse with training
//! (overfitting), two members can keep copying each other backwards. So a slot is **rewound
//! to a step at most once**: an exploit whose checkpoint is behind the loser's step is made
//! only if that step is higher than any step the slot was rewound to before; otherwise the
//! loser checkpoints as if it had not been paired. Every slot's steps then only grow between
//! at most `⌈max_step/interval⌉` rewinds, so every run ends.
//!
//! # Work
//! A free worker asks [`PbtScheduler::next_work`]: [`Work::Start`] while a slot has no member
//! (the slot is reserved until [`PbtScheduler::on_start`] or
//! [`PbtScheduler::abandon_start`], so concurrent workers never start more members than there
//! are slots); else [`Work::Resume`] of the paused member with the lowest step (ties: the
//! lowest trial number) whose checkpoint is saved, up to its next boundary; else
//! [`Work::Wait`] while any member is unfinished; else [`Work::Finished`]. A member that
//! crashes is passed to [`PbtScheduler::on_failed`]: its slot starts a fresh member from step
//! 0.
//!
//! # Storage
//! The scheduler is plain data that round-trips exactly through `serde_json` (non-finite
//! scores are written as `"nan"`, `"inf"` and `"-inf"`), so a study that stores it after every
//! call continues the very same schedule after a restart. A stored state is validated when it
//! is read back. No method panics, on bad input or on a corrupted state: they return
//! [`Error::InvalidArgument`] naming the offending value and the fix.

use crate::error::{Error, Result};
use crate::rng::TrialRng;
use crate::schedule::decide::{exact_f64, Work};
use crate::schedule::pbt::{exploit, PbtConfig};
use crate::study::Direction;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// [`PbtScheduler`]'s answer to a member's report at a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PbtDecision {
    /// Between boundaries: keep training.
    Continue,
    /// At a boundary, not exploited: save a checkpoint at this step (others may copy it once
    /// [`PbtScheduler::on_saved`] is told), then keep training (`pause == false`) or pause
    /// and free the worker (`pause == true`: another member is behind and needs a worker).
    Checkpoint {
        /// Whether to pause after saving.
        pause: bool,
    },
    /// In the bottom quantile: this trial ends here; a new trial continues from trial
    /// `winner`'s checkpoint saved at `step`, with parameters explored from the winner's, and
    /// takes this trial's slot ([`PbtScheduler::on_child`]).
    Exploit {
        /// The member whose checkpoint is copied.
        winner: u64,
        /// The step of the winner's checkpoint: the child resumes from it.
        step: u64,
    },
    /// The member reached the maximum step: finish it with the reported value.
    Complete,
}

/// A score, compared bit for bit so that a state holding NaN still equals itself.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(transparent)]
struct Score(#[serde(with = "exact_f64")] f64);

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

/// Where a slot stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Phase {
    /// No member: never started, or its member failed. `next_work` starts one.
    Open,
    /// A [`Work::Start`] was handed out for the slot; waiting for `on_start`.
    Starting,
    /// The member is training.
    Running { trial: u64 },
    /// The member paused at a boundary, waiting for a worker.
    Paused { trial: u64 },
    /// The member was told to exploit `winner`'s checkpoint at `from`; waiting for
    /// `on_child`.
    Exploited { trial: u64, winner: u64, from: u64 },
    /// The member reached the maximum step.
    Completed { trial: u64 },
}

impl Phase {
    /// The slot's member, if it has one.
    fn trial(self) -> Option<u64> {
        match self {
            Phase::Open | Phase::Starting => None,
            Phase::Running { trial }
            | Phase::Paused { trial }
            | Phase::Exploited { trial, .. }
            | Phase::Completed { trial } => Some(trial),
        }
    }

    /// The phase in words, for error messages.
    fn describe(self) -> String {
        match self {
            Phase::Open => "open".into(),
            Phase::Starting => "starting".into(),
            Phase::Running { .. } => "running".into(),
            Phase::Paused { .. } => "paused".into(),
            Phase::Exploited { winner, from, .. } => {
                format!("ended by an Exploit of #{winner}'s checkpoint at step {from}")
            }
            Phase::Completed { .. } => "completed".into(),
        }
    }
}

/// One place in the population.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Slot {
    phase: Phase,
    /// The member's latest reported step (for a child before its first report: the step it
    /// resumed from; 0 for a fresh member).
    step: u64,
    /// The member's score at its latest boundary; `None` before its first.
    score: Option<Score>,
    /// The member's latest step with a [`PbtDecision::Checkpoint`].
    asked: Option<u64>,
    /// The member's latest step whose checkpoint is saved: copyable.
    saved: Option<u64>,
    /// The highest step this slot was rewound to by an exploit (kept across members).
    rewound_to: Option<u64>,
}

impl Slot {
    fn open() -> Self {
        Slot {
            phase: Phase::Open,
            step: 0,
            score: None,
            asked: None,
            saved: None,
            rewound_to: None,
        }
    }

    /// A new member `trial` from `step` on, keeping only the slot's rewind record.
    fn become_member(&mut self, trial: u64, step: u64) {
        self.phase = Phase::Running { trial };
        self.step = step;
        self.score = None;
        self.asked = None;
        self.saved = None;
    }

    /// No member any more.
    fn reopen(&mut self) {
        let rewound_to = self.rewound_to;
        *self = Slot {
            rewound_to,
            ..Slot::open()
        };
    }
}

/// The asynchronous schedule of Population Based Training (Jaderberg et al. 2017, with Ray
/// Tune's rules); see the [module documentation](self) for the protocol and the rules.
///
/// Plain data: clone it, store it as JSON after every call, and read it back to continue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredPbtScheduler")]
pub struct PbtScheduler {
    interval: u64,
    max_step: u64,
    config: PbtConfig,
    direction: Direction,
    slots: Vec<Slot>,
    /// Trials that were members and left (exploited or failed); their numbers are not reused.
    retired: BTreeSet<u64>,
}

/// [`PbtScheduler`] as stored, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredPbtScheduler {
    interval: u64,
    max_step: u64,
    config: PbtConfig,
    direction: Direction,
    slots: Vec<Slot>,
    retired: BTreeSet<u64>,
}

impl TryFrom<StoredPbtScheduler> for PbtScheduler {
    type Error = Error;
    fn try_from(s: StoredPbtScheduler) -> Result<Self> {
        let scheduler = PbtScheduler {
            interval: s.interval,
            max_step: s.max_step,
            config: s.config,
            direction: s.direction,
            slots: s.slots,
            retired: s.retired,
        };
        scheduler.validate()?;
        Ok(scheduler)
    }
}

/// The error for a stored state that breaks the scheduler's invariants.
fn corrupt(what: String) -> Error {
    Error::invalid_argument(
        "state",
        format!("the stored PBT scheduler state is inconsistent ({what}); restore an intact copy"),
    )
}

impl PbtScheduler {
    /// A population of `population_size ≥ 2` slots whose members compare themselves every
    /// `interval ≥ 1` steps and train to `max_step ≥ interval`, exploiting and exploring by
    /// `config`, scores compared in `direction`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `population_size`, `interval` or `max_step`.
    pub fn new(
        population_size: usize,
        interval: u64,
        max_step: u64,
        config: PbtConfig,
        direction: Direction,
    ) -> Result<Self> {
        check_shape(population_size, interval, max_step)?;
        Ok(PbtScheduler {
            interval,
            max_step,
            config,
            direction,
            slots: vec![Slot::open(); population_size],
            retired: BTreeSet::new(),
        })
    }

    /// The number of slots.
    pub fn population_size(&self) -> usize {
        self.slots.len()
    }

    /// The number of steps between two boundaries (Ray's `perturbation_interval`).
    pub fn interval(&self) -> u64 {
        self.interval
    }

    /// The step at which members complete.
    pub fn max_step(&self) -> u64 {
        self.max_step
    }

    /// The exploit and explore settings.
    pub fn config(&self) -> &PbtConfig {
        &self.config
    }

    /// Whether a higher or a lower score is better.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The current member of each slot that has one, in slot order, with the step it has
    /// reached (its latest report; for a child that has not reported yet, the step it resumed
    /// from). A slot whose member failed, or that was never started, is left out until its new
    /// member starts. A member told to exploit stays listed until its child replaces it.
    pub fn members(&self) -> Vec<(u64, u64)> {
        self.slots
            .iter()
            .filter_map(|s| s.phase.trial().map(|t| (t, s.step)))
            .collect()
    }

    /// Whether every slot's member has reached the maximum step ([`Work::Finished`]).
    pub fn is_finished(&self) -> bool {
        self.slots
            .iter()
            .all(|s| matches!(s.phase, Phase::Completed { .. }))
    }

    /// What a free worker should do: [`Work::Start`] a member for a slot without one (the slot
    /// is reserved until [`on_start`](Self::on_start) or
    /// [`abandon_start`](Self::abandon_start)); else [`Work::Resume`] the paused member with
    /// the lowest step (ties: the lowest trial number) whose checkpoint is saved, to its next
    /// boundary — it is marked running; else [`Work::Wait`] while a member is unfinished;
    /// else [`Work::Finished`].
    ///
    /// # Errors
    /// None today; the signature matches the other schedulers'.
    pub fn next_work(&mut self) -> Result<Work> {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.phase == Phase::Open) {
            slot.phase = Phase::Starting;
            return Ok(Work::Start { bracket: None });
        }
        let resumable = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.phase {
                Phase::Paused { trial } if s.saved == Some(s.step) => Some((s.step, trial, i)),
                _ => None,
            })
            .min();
        if let Some((step, trial, i)) = resumable {
            let to_step = self.next_boundary(step);
            if let Some(slot) = self.slots.get_mut(i) {
                slot.phase = Phase::Running { trial };
                return Ok(Work::Resume { trial, to_step });
            }
        }
        Ok(if self.is_finished() {
            Work::Finished
        } else {
            Work::Wait
        })
    }

    /// Registers the trial created for a [`Work::Start`]: it becomes the member of the lowest
    /// reserved slot, training from step 0.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when no start is pending or the number is
    /// already in use here.
    pub fn on_start(&mut self, trial: u64) -> Result<()> {
        self.check_new(trial, "trial")?;
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.phase == Phase::Starting)
            .ok_or_else(|| {
                Error::invalid_argument(
                    "trial",
                    format!(
                        "on_start(#{trial}) without a pending Work::Start; call next_work first \
                         and on_start once per Work::Start it returned"
                    ),
                )
            })?;
        slot.become_member(trial, 0);
        Ok(())
    }

    /// Releases a [`Work::Start`] whose worker gave up before creating its trial: a later
    /// [`next_work`](Self::next_work) hands the slot out again.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `pending_starts` when none is pending.
    pub fn abandon_start(&mut self) -> Result<()> {
        let slot = self
            .slots
            .iter_mut()
            .rev()
            .find(|s| s.phase == Phase::Starting)
            .ok_or_else(|| {
                Error::invalid_argument(
                    "pending_starts",
                    "no Work::Start is pending (got 0); call abandon_start only for a \
                     Work::Start whose trial was never created",
                )
            })?;
        slot.phase = Phase::Open;
        Ok(())
    }

    /// A running member's `value` at `step`: [`PbtDecision::Continue`] before its next
    /// boundary, [`PbtDecision::Complete`] at `max_step`, and at any other boundary
    /// [`PbtDecision::Exploit`] or [`PbtDecision::Checkpoint`] by the rules of the
    /// [module documentation](self). `rng` draws the winner; the same state, report and `rng`
    /// state give the same decision.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when it is not a running member (unknown,
    /// paused, completed, or ended by an exploit or a failure), or `step` when it is not after
    /// the member's previous step or skips its next boundary.
    pub fn report(
        &mut self,
        trial: u64,
        step: u64,
        value: f64,
        rng: &mut TrialRng,
    ) -> Result<PbtDecision> {
        let i = self.slot_of(trial, "trial")?;
        let (phase, at) = match self.slots.get(i) {
            Some(slot) => (slot.phase, slot.step),
            None => return Err(self.unknown(trial, "trial")),
        };
        if !matches!(phase, Phase::Running { .. }) {
            return Err(Error::invalid_argument(
                "trial",
                format!(
                    "trial #{trial} is not running (it is {}); report only between Work::Start, \
                     Work::Resume or on_child and the next Checkpoint {{ pause: true }}, Exploit \
                     or Complete",
                    phase.describe()
                ),
            ));
        }
        if step <= at {
            return Err(Error::invalid_argument(
                "step",
                format!(
                    "trial #{trial} reported step {step}, but it is already at step {at}; report \
                     each step once, in increasing order (a child's first step is the one after \
                     the step it resumed from)"
                ),
            ));
        }
        let boundary = self.next_boundary(at);
        if step > boundary {
            return Err(Error::invalid_argument(
                "step",
                format!(
                    "trial #{trial} reported step {step}, past its next boundary at step \
                     {boundary}; report at every multiple of the interval ({}) and at max_step \
                     ({}), where the scheduler decides",
                    self.interval, self.max_step
                ),
            ));
        }
        let Some(slot) = self.slots.get_mut(i) else {
            return Err(self.unknown(trial, "trial"));
        };
        slot.step = step;
        if step < boundary {
            return Ok(PbtDecision::Continue);
        }
        slot.score = Some(Score(value));
        if step >= self.max_step {
            slot.phase = Phase::Completed { trial };
            return Ok(PbtDecision::Complete);
        }
        if let Some((winner, from)) = self.exploit_target(i, trial, step, rng) {
            if let Some(slot) = self.slots.get_mut(i) {
                if from < step {
                    slot.rewound_to = Some(from);
                }
                slot.phase = Phase::Exploited {
                    trial,
                    winner,
                    from,
                };
                slot.score = None;
                slot.asked = None;
                slot.saved = None;
                return Ok(PbtDecision::Exploit { winner, step: from });
            }
        }
        let pause = self.slots.iter().enumerate().any(|(j, s)| {
            j != i
                && match s.phase {
                    Phase::Open => true,
                    Phase::Paused { .. } => s.step < step,
                    _ => false,
                }
        });
        let Some(slot) = self.slots.get_mut(i) else {
            return Err(self.unknown(trial, "trial"));
        };
        slot.asked = Some(step);
        if pause {
            slot.phase = Phase::Paused { trial };
        }
        Ok(PbtDecision::Checkpoint { pause })
    }

    /// The caller saved `trial`'s checkpoint at `step` (the step of its latest
    /// [`PbtDecision::Checkpoint`]): only now may other members copy it, and only now may a
    /// paused member be resumed.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when it is not a current member, or `step`
    /// when the member was not told to checkpoint at that step.
    pub fn on_saved(&mut self, trial: u64, step: u64) -> Result<()> {
        let i = self.slot_of(trial, "trial")?;
        let Some(slot) = self.slots.get_mut(i) else {
            return Err(self.unknown(trial, "trial"));
        };
        if slot.asked != Some(step) {
            let latest = match slot.asked {
                Some(a) => format!("its latest Checkpoint decision was at step {a}"),
                None => "it has had no Checkpoint decision".into(),
            };
            return Err(Error::invalid_argument(
                "step",
                format!(
                    "trial #{trial} was not asked to checkpoint at step {step} ({latest}); call \
                     on_saved with the step of the Checkpoint decision once its checkpoint is \
                     saved"
                ),
            ));
        }
        slot.saved = Some(step);
        Ok(())
    }

    /// After [`PbtDecision::Exploit`]: the new trial `child` takes `loser`'s slot, resuming
    /// from the winner's checkpoint at `step` (the decision's step), and is running from now
    /// on. Its first report is at `step + 1` at the earliest, so it is never judged at the step
    /// it resumed from; it is ranked from its first boundary on.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `loser` when it was not told to exploit, `step` when it
    /// differs from the decision's, or `child` when that number is already in use here.
    pub fn on_child(&mut self, loser: u64, child: u64, step: u64) -> Result<()> {
        let i = self.slot_of(loser, "loser")?;
        let phase = match self.slots.get(i) {
            Some(slot) => slot.phase,
            None => return Err(self.unknown(loser, "loser")),
        };
        let Phase::Exploited { winner, from, .. } = phase else {
            return Err(Error::invalid_argument(
                "loser",
                format!(
                    "trial #{loser} was not told to exploit (it is {}); call on_child only \
                     after an Exploit decision for it",
                    phase.describe()
                ),
            ));
        };
        if step != from {
            return Err(Error::invalid_argument(
                "step",
                format!(
                    "trial #{loser} was told to continue from #{winner}'s checkpoint at step \
                     {from}, not {step}; pass the step of the Exploit decision"
                ),
            ));
        }
        self.check_new(child, "child")?;
        self.retired.insert(loser);
        if let Some(slot) = self.slots.get_mut(i) {
            slot.become_member(child, from);
        }
        Ok(())
    }

    /// A member crashed (or its checkpoint, or its child, could not be made): it leaves the
    /// population, and its slot starts a fresh member from step 0 at a later
    /// [`next_work`](Self::next_work). Its checkpoints can no longer be copied.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `trial` when it is not a current member, or it has
    /// already completed.
    pub fn on_failed(&mut self, trial: u64) -> Result<()> {
        let i = self.slot_of(trial, "trial")?;
        let Some(slot) = self.slots.get_mut(i) else {
            return Err(self.unknown(trial, "trial"));
        };
        if matches!(slot.phase, Phase::Completed { .. }) {
            return Err(Error::invalid_argument(
                "trial",
                format!("trial #{trial} already completed at the maximum step; it cannot fail"),
            ));
        }
        slot.reopen();
        self.retired.insert(trial);
        Ok(())
    }

    /// The first boundary after `step`: the next multiple of the interval, at most `max_step`.
    fn next_boundary(&self, step: u64) -> u64 {
        let interval = self.interval.max(1);
        (step / interval)
            .checked_add(1)
            .and_then(|k| k.checked_mul(interval))
            .map_or(self.max_step, |b| b.min(self.max_step))
    }

    /// Whether `step` is a boundary below `max_step` (where checkpoints are taken).
    fn is_inner_boundary(&self, step: u64) -> bool {
        step > 0 && step < self.max_step && step.checked_rem(self.interval) == Some(0)
    }

    /// The winner and checkpoint step that the member of slot `i`, `trial`, just scored at
    /// boundary `step`, copies — or `None` when it is not a loser, its winner has no saved
    /// checkpoint, or the rewind rule forbids it.
    fn exploit_target(
        &self,
        i: usize,
        trial: u64,
        step: u64,
        rng: &mut TrialRng,
    ) -> Option<(u64, u64)> {
        let population: Vec<(u64, f64)> = self
            .slots
            .iter()
            .filter_map(|s| Some((s.phase.trial()?, s.score?.0)))
            .collect();
        let pairs = exploit(&population, &self.config, self.direction, rng);
        let winner = pairs.iter().find(|p| p.0 == trial)?.1;
        let from = self
            .slots
            .iter()
            .find(|s| s.phase.trial() == Some(winner))?
            .saved?;
        let rewound_to = self.slots.get(i)?.rewound_to;
        if from < step && rewound_to.is_some_and(|r| from <= r) {
            return None;
        }
        Some((winner, from))
    }

    /// The slot whose current member is `trial`.
    fn slot_of(&self, trial: u64, name: &'static str) -> Result<usize> {
        self.slots
            .iter()
            .position(|s| s.phase.trial() == Some(trial))
            .ok_or_else(|| self.unknown(trial, name))
    }

    /// The error for a trial that is not a current member.
    fn unknown(&self, trial: u64, name: &'static str) -> Error {
        if self.retired.contains(&trial) {
            Error::invalid_argument(
                name,
                format!(
                    "trial #{trial} is no longer a member of the population (it was replaced by \
                     an exploit's child, or it failed); address the slot's current member \
                     instead (see members())"
                ),
            )
        } else {
            Error::invalid_argument(
                name,
                format!(
                    "trial #{trial} is not a member of this population; pass only trials \
                     registered with on_start or on_child"
                ),
            )
        }
    }

    /// Checks that `trial` was never a member here.
    fn check_new(&self, trial: u64, name: &'static str) -> Result<()> {
        let known = self.retired.contains(&trial)
            || self.slots.iter().any(|s| s.phase.trial() == Some(trial));
        if known {
            return Err(Error::invalid_argument(
                name,
                format!(
                    "trial #{trial} is, or was, already a member here; pass each new trial's \
                     number once"
                ),
            ));
        }
        Ok(())
    }

    /// Checks a stored state's invariants.
    fn validate(&self) -> Result<()> {
        check_shape(self.slots.len(), self.interval, self.max_step).map_err(|e| match e {
            Error::InvalidArgument { name, reason } => corrupt(format!("{name}: {reason}")),
            other => other,
        })?;
        let mut seen = BTreeSet::new();
        for (i, s) in self.slots.iter().enumerate() {
            let bad = |what: &str| corrupt(format!("slot {i}: {what}"));
            if let Some(trial) = s.phase.trial() {
                if self.retired.contains(&trial) || !seen.insert(trial) {
                    return Err(bad(&format!("trial #{trial} appears twice")));
                }
            }
            if s.step > self.max_step {
                return Err(bad("its step is past max_step"));
            }
            let ok = match s.phase {
                Phase::Open | Phase::Starting => {
                    s.step == 0 && s.score.is_none() && s.asked.is_none() && s.saved.is_none()
                }
                Phase::Running { .. } => s.step < self.max_step,
                Phase::Paused { .. } => self.is_inner_boundary(s.step) && s.asked == Some(s.step),
                Phase::Exploited { from, .. } => {
                    self.is_inner_boundary(s.step) && self.is_inner_boundary(from)
                }
                Phase::Completed { .. } => s.step == self.max_step,
            };
            if !ok {
                return Err(bad(&format!(
                    "phase {:?} does not fit step {}",
                    s.phase, s.step
                )));
            }
            for (what, checkpoint) in [("asked", s.asked), ("saved", s.saved)] {
                if checkpoint.is_some_and(|c| c > s.step || !self.is_inner_boundary(c)) {
                    return Err(bad(&format!("{what} is not a boundary it reached")));
                }
            }
            if s.rewound_to.is_some_and(|r| !self.is_inner_boundary(r)) {
                return Err(bad("rewound_to is not a boundary"));
            }
        }
        Ok(())
    }
}

/// Validates the population's shape.
fn check_shape(population_size: usize, interval: u64, max_step: u64) -> Result<()> {
    if population_size < 2 {
        return Err(Error::invalid_argument(
            "population_size",
            format!(
                "must be at least 2 (members copy one another), got {population_size}; the PBT \
                 paper and Ray's examples use 10 to 80"
            ),
        ));
    }
    if interval == 0 {
        return Err(Error::invalid_argument(
            "interval",
            "must be at least 1 step between two exploit/explore rounds, got 0",
        ));
    }
    if max_step < interval {
        return Err(Error::invalid_argument(
            "max_step",
            format!(
                "must be at least the interval ({interval}), got {max_step}; otherwise no member \
                 ever reaches a boundary before it completes: lower the interval or raise \
                 max_step"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::pbt::{explore_value, quantile_size};
    use crate::space::{Distribution, FloatDistribution};
    use proptest::prelude::*;
    use std::cmp::Ordering;
    use std::collections::BTreeMap;

    const POPULATION: usize = 8;
    const INTERVAL: u64 = 4;
    const MAX_STEP: u64 = 40;

    fn scheduler(direction: Direction) -> Result<PbtScheduler> {
        PbtScheduler::new(
            POPULATION,
            INTERVAL,
            MAX_STEP,
            PbtConfig::default(),
            direction,
        )
    }

    /// A fixed pseudo-random unit number (splitmix64 of the argument).
    fn unit(n: u64) -> f64 {
        let mut z = n
            .wrapping_add(0x5EED_5EED_5EED_5EED)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A learning curve to minimize: a member with hyperparameter `x ∈ [0, 1]` does best
    /// near 0.7 and improves with the steps.
    fn curve(x: f64, step: u64) -> f64 {
        (x - 0.7).powi(2) + 1.0 / step as f64
    }

    /// [`curve`] with diverging (NaN) and infinite members.
    fn odd_curve(x: f64, step: u64) -> f64 {
        if x < 0.1 {
            f64::NAN
        } else if x > 0.95 && step > 8 {
            f64::INFINITY
        } else {
            curve(x, step)
        }
    }

    /// An objective that gets worse with training (overfitting): members further along
    /// always look worse than those behind them.
    fn overfitting(x: f64, step: u64) -> f64 {
        x + step as f64
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Event {
        Work(Work),
        Report(u64, u64, PbtDecision),
        Child(u64, u64),
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Status {
        Running,
        Paused,
        Completed,
    }

    /// What the simulation knows of a member, kept apart from the scheduler's state.
    #[derive(Clone, Debug)]
    struct Member {
        /// Its hyperparameter.
        x: f64,
        step: u64,
        status: Status,
        /// Its latest boundary score.
        score: Option<f64>,
        /// The steps of its saved checkpoints.
        saved: Vec<u64>,
        /// The place in the population it holds (a child inherits its loser's).
        lane: usize,
        /// Whether it is a child that has not reached a boundary yet.
        new_child: bool,
    }

    #[derive(Default)]
    struct Run {
        log: Vec<Event>,
        pauses: usize,
        resumes: usize,
        exploits: usize,
        rewinds: usize,
        /// The largest lead of a running member over a paused one, in steps.
        max_lead: u64,
        members: BTreeMap<u64, Member>,
    }

    struct Setup {
        workers: usize,
        seed: u64,
        /// Send the scheduler through JSON at this tick.
        save_at: Option<u64>,
        score: fn(f64, u64) -> f64,
    }

    fn setup(workers: usize) -> Setup {
        Setup {
            workers,
            seed: 7,
            save_at: None,
            score: curve,
        }
    }

    /// The members with a score, ranked best first as the module documentation says (NaN
    /// last, ties by number).
    fn ranking(members: &BTreeMap<u64, Member>, direction: Direction) -> Vec<u64> {
        let mut scored: Vec<(u64, f64)> = members
            .iter()
            .filter_map(|(&t, m)| Some((t, m.score?)))
            .collect();
        scored.sort_by(|a, b| {
            a.1.is_nan()
                .cmp(&b.1.is_nan())
                .then(
                    direction
                        .to_loss(a.1)
                        .partial_cmp(&direction.to_loss(b.1))
                        .unwrap_or(Ordering::Equal),
                )
                .then(a.0.cmp(&b.0))
        });
        scored.into_iter().map(|(t, _)| t).collect()
    }

    /// A discrete-event simulation in unit time steps: each tick every free worker asks for
    /// work, then every busy worker trains its member one step and reports
    /// `score(x, step)`. Checkpoints are saved at once; an exploit's child continues in the
    /// loser's worker at once with `x` explored from the winner's. Checks every answer
    /// against the simulation's own bookkeeping; runs until the scheduler says Finished.
    fn simulate(s: &mut PbtScheduler, setup: &Setup) -> Result<Run> {
        let population = s.population_size();
        let (interval, max_step) = (s.interval(), s.max_step());
        let config = s.config().clone();
        let direction = s.direction();
        let space: Distribution = FloatDistribution::uniform(0.0, 1.0)?.into();
        let mut run = Run::default();
        let members = &mut run.members;
        let mut workers: Vec<Option<u64>> = vec![None; setup.workers];
        let mut next_trial = 0;
        let mut lanes = 0;
        let mut rewound_to: BTreeMap<usize, u64> = BTreeMap::new();
        let mut tick = 0;
        loop {
            tick += 1;
            assert!(tick < 10_000, "the schedule is stuck");
            if Some(tick) == setup.save_at {
                let json = serde_json::to_string(&*s)?;
                *s = serde_json::from_str(&json)?;
                assert_eq!(serde_json::to_string(&*s)?, json, "the state round-trips");
            }
            let mut finished = false;
            for w in 0..workers.len() {
                if workers[w].is_some() {
                    continue;
                }
                let work = s.next_work()?;
                run.log.push(Event::Work(work));
                match work {
                    Work::Start { bracket } => {
                        assert_eq!(bracket, None);
                        assert!(lanes < population, "more members started than slots");
                        let trial = next_trial;
                        next_trial += 1;
                        s.on_start(trial)?;
                        let member = Member {
                            x: unit(trial ^ setup.seed.rotate_left(17)),
                            step: 0,
                            status: Status::Running,
                            score: None,
                            saved: Vec::new(),
                            lane: lanes,
                            new_child: false,
                        };
                        lanes += 1;
                        members.insert(trial, member);
                        workers[w] = Some(trial);
                    }
                    Work::Resume { trial, to_step } => {
                        let m = &members[&trial];
                        assert_eq!(
                            m.status,
                            Status::Paused,
                            "#{trial} resumed while not paused"
                        );
                        assert_eq!(m.saved.last(), Some(&m.step), "resumed before it was saved");
                        assert_eq!(to_step, (m.step + interval).min(max_step));
                        for (&t, o) in members.iter() {
                            if o.status == Status::Paused {
                                assert!((o.step, t) >= (m.step, trial), "#{t} was further behind");
                            }
                        }
                        assert!(!workers.contains(&Some(trial)), "#{trial} runs twice");
                        if let Some(m) = members.get_mut(&trial) {
                            m.status = Status::Running;
                        }
                        workers[w] = Some(trial);
                        run.resumes += 1;
                    }
                    Work::Wait => {
                        assert!(members.values().any(|m| m.status != Status::Completed));
                    }
                    Work::Finished => {
                        assert_eq!(lanes, population);
                        assert!(members.values().all(|m| m.status == Status::Completed));
                        finished = true;
                    }
                }
            }
            if finished {
                assert!(workers.iter().all(Option::is_none));
                return Ok(run);
            }
            for (w, worker) in workers.iter_mut().enumerate() {
                let Some(trial) = *worker else { continue };
                let (x, step, lane) = match members.get_mut(&trial) {
                    Some(m) => {
                        assert_eq!(m.status, Status::Running);
                        m.step += 1;
                        (m.x, m.step, m.lane)
                    }
                    None => panic!("worker {w} runs #{trial}, which is not a member"),
                };
                let value = (setup.score)(x, step);
                let mut rng =
                    TrialRng::for_trial(setup.seed, trial, &format!("pbt-exploit-{step}"));
                let decision = s.report(trial, step, value, &mut rng)?;
                run.log.push(Event::Report(trial, step, decision));
                let boundary = step % interval == 0 || step == max_step;
                if decision == PbtDecision::Continue {
                    assert!(!boundary, "#{trial} continued at boundary {step}");
                    continue;
                }
                assert!(boundary, "#{trial} decided at {step}, not a boundary");
                if let Some(m) = members.get_mut(&trial) {
                    m.score = Some(value);
                    m.new_child = false;
                }
                match decision {
                    PbtDecision::Continue => {}
                    PbtDecision::Complete => {
                        assert_eq!(step, max_step);
                        if let Some(m) = members.get_mut(&trial) {
                            m.status = Status::Completed;
                        }
                        *worker = None;
                    }
                    PbtDecision::Checkpoint { pause } => {
                        assert!(step < max_step);
                        let behind = lanes < population
                            || members
                                .values()
                                .any(|o| o.status == Status::Paused && o.step < step);
                        assert_eq!(pause, behind, "#{trial} at {step}");
                        s.on_saved(trial, step)?;
                        if let Some(m) = members.get_mut(&trial) {
                            m.saved.push(step);
                            if pause {
                                m.status = Status::Paused;
                            }
                        }
                        if pause {
                            *worker = None;
                            run.pauses += 1;
                        }
                    }
                    PbtDecision::Exploit { winner, step: from } => {
                        assert!(step < max_step);
                        let ranked = ranking(members, direction);
                        let k = quantile_size(ranked.len(), config.quantile_fraction());
                        assert!(k >= 1);
                        assert!(
                            ranked[ranked.len() - k..].contains(&trial),
                            "#{trial} is not in the bottom quantile of {ranked:?}"
                        );
                        assert!(
                            ranked[..k].contains(&winner),
                            "#{winner} is not in the top quantile of {ranked:?}"
                        );
                        let won = &members[&winner];
                        assert_eq!(won.saved.last(), Some(&from), "not #{winner}'s latest");
                        if from < step {
                            run.rewinds += 1;
                            let previous = rewound_to.insert(lane, from);
                            assert!(
                                previous.is_none_or(|p| p < from),
                                "lane {lane} rewound to {from} after {previous:?}"
                            );
                        }
                        let child = next_trial;
                        next_trial += 1;
                        s.on_child(trial, child, from)?;
                        run.log.push(Event::Child(trial, child));
                        let mut explore_rng = TrialRng::for_trial(setup.seed, trial, "explore");
                        let x = explore_value(&space, won.x, &config, &mut explore_rng);
                        members.remove(&trial);
                        let member = Member {
                            x,
                            step: from,
                            status: Status::Running,
                            score: None,
                            saved: Vec::new(),
                            lane,
                            new_child: true,
                        };
                        members.insert(child, member);
                        *worker = Some(child);
                        run.exploits += 1;
                    }
                }
            }
            // The scheduler agrees on the members and their steps; nobody runs twice.
            let mut theirs = s.members();
            theirs.sort_unstable();
            let ours: Vec<(u64, u64)> = members.iter().map(|(&t, m)| (t, m.step)).collect();
            assert_eq!(theirs, ours);
            let running: Vec<u64> = workers.iter().flatten().copied().collect();
            let distinct: BTreeSet<u64> = running.iter().copied().collect();
            assert_eq!(
                distinct.len(),
                running.len(),
                "a member runs twice: {running:?}"
            );
            let lowest_paused = members
                .values()
                .filter(|m| m.status == Status::Paused)
                .map(|m| m.step)
                .min();
            if let Some(low) = lowest_paused {
                for t in running.iter().filter(|t| !members[*t].new_child) {
                    let lead = members[t].step.saturating_sub(low);
                    run.max_lead = run.max_lead.max(lead);
                }
            }
        }
    }

    fn invalid_name<T: std::fmt::Debug>(r: Result<T>) -> &'static str {
        match r {
            Err(Error::InvalidArgument { name, .. }) => name,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    /// Checks a finished run: every slot's final member completed at the maximum step.
    fn check_finished(s: &PbtScheduler, run: &Run) {
        assert!(s.is_finished());
        assert_eq!(run.members.len(), POPULATION);
        assert!(run
            .members
            .values()
            .all(|m| m.status == Status::Completed && m.step == MAX_STEP));
        let lanes: BTreeSet<usize> = run.members.values().map(|m| m.lane).collect();
        assert_eq!(lanes.len(), POPULATION);
        assert!(s.members().iter().all(|&(_, step)| step == MAX_STEP));
        let mut again = s.clone();
        assert_eq!(again.next_work().ok(), Some(Work::Finished));
    }

    #[test]
    fn every_member_reaches_max_step_with_any_number_of_workers() -> Result<()> {
        for workers in [1, 3, 8, 12] {
            let mut exploits = 0;
            for seed in 0..4 {
                for score in [curve as fn(f64, u64) -> f64, odd_curve] {
                    let mut s = scheduler(Direction::Minimize)?;
                    let run = simulate(
                        &mut s,
                        &Setup {
                            workers,
                            seed,
                            save_at: None,
                            score,
                        },
                    )?;
                    check_finished(&s, &run);
                    exploits += run.exploits;
                    if workers >= POPULATION {
                        // A worker per member: nobody ever pauses.
                        assert_eq!((run.pauses, run.resumes), (0, 0), "{workers} workers");
                    } else {
                        // Members take turns, the one furthest behind first (checked in
                        // `simulate`): at equal speeds, a running member — other than a child
                        // that resumed from a copied checkpoint and has not reached a boundary
                        // yet — is never a whole interval ahead of a paused one.
                        assert!(run.pauses > 0 && run.resumes > 0, "{workers} workers");
                        assert!(run.max_lead < INTERVAL, "lead {}", run.max_lead);
                    }
                }
            }
            assert!(exploits >= 20, "{workers} workers: {exploits} exploits");
        }
        Ok(())
    }

    #[test]
    fn an_objective_that_worsens_with_training_still_finishes() -> Result<()> {
        // Members further along look worse, so the leaders keep losing and copying
        // checkpoints behind them; each slot is rewound to a step at most once (checked in
        // `simulate`), so the run ends.
        for workers in [1, 3, 8] {
            let mut s = scheduler(Direction::Minimize)?;
            let run = simulate(
                &mut s,
                &Setup {
                    score: overfitting,
                    ..setup(workers)
                },
            )?;
            check_finished(&s, &run);
            assert!(run.rewinds > 0, "{workers} workers");
        }
        Ok(())
    }

    #[test]
    fn a_slot_is_rewound_to_a_step_at_most_once() -> Result<()> {
        // An objective that worsens with training, one worker.
        let mut s = PbtScheduler::new(2, 2, 10, PbtConfig::default(), Direction::Minimize)?;
        let mut rng = TrialRng::from_seed(1);
        assert_eq!(s.next_work()?, Work::Start { bracket: None });
        s.on_start(0)?;
        assert_eq!(s.report(0, 1, 1.0, &mut rng)?, PbtDecision::Continue);
        // Slot 1 has not started: #0 pauses for it.
        assert_eq!(
            s.report(0, 2, 2.0, &mut rng)?,
            PbtDecision::Checkpoint { pause: true }
        );
        s.on_saved(0, 2)?;
        assert_eq!(s.next_work()?, Work::Start { bracket: None });
        s.on_start(1)?;
        // #1 is worse than #0 and copies its checkpoint at the same step.
        assert_eq!(
            s.report(1, 2, 3.0, &mut rng)?,
            PbtDecision::Exploit { winner: 0, step: 2 }
        );
        s.on_child(1, 2, 2)?;
        // The child reaches step 4 and is worse than #0 at step 2: it copies #0 again, a
        // rewind from 4 to 2 (the first for this slot).
        assert_eq!(
            s.report(2, 4, 4.0, &mut rng)?,
            PbtDecision::Exploit { winner: 0, step: 2 }
        );
        s.on_child(2, 3, 2)?;
        // Again worse at 4, but the slot was already rewound to 2: no second rewind there.
        // It checkpoints and pauses for #0, which is behind it, and #0 runs again.
        assert_eq!(
            s.report(3, 4, 4.0, &mut rng)?,
            PbtDecision::Checkpoint { pause: true }
        );
        s.on_saved(3, 4)?;
        assert_eq!(
            s.next_work()?,
            Work::Resume {
                trial: 0,
                to_step: 4
            }
        );
        Ok(())
    }

    #[test]
    fn state_round_trips_mid_run_and_continues_identically() -> Result<()> {
        for workers in [1, 3, 8] {
            let base = Setup {
                score: odd_curve,
                ..setup(workers)
            };
            let mut straight = scheduler(Direction::Maximize)?;
            let a = simulate(&mut straight, &base)?;
            for save_at in [1, 2, 9, 23, 40] {
                let mut restored = scheduler(Direction::Maximize)?;
                let b = simulate(
                    &mut restored,
                    &Setup {
                        save_at: Some(save_at),
                        ..base
                    },
                )?;
                assert_eq!(a.log, b.log, "{workers} workers, saved at tick {save_at}");
                assert_eq!(straight, restored);
                assert_eq!(
                    serde_json::to_string(&straight)?,
                    serde_json::to_string(&restored)?
                );
            }
        }
        // Non-finite scores survive as text, and the state equals itself with NaN inside.
        let mut s = scheduler(Direction::Minimize)?;
        let mut rng = TrialRng::from_seed(3);
        for (trial, value) in [(0, f64::NAN), (1, f64::INFINITY), (2, f64::NEG_INFINITY)] {
            s.next_work()?;
            s.on_start(trial)?;
            s.report(trial, INTERVAL, value, &mut rng)?;
        }
        let json = serde_json::to_string(&s)?;
        assert!(
            json.contains("\"nan\"") && json.contains("\"inf\"") && json.contains("\"-inf\""),
            "{json}"
        );
        let back: PbtScheduler = serde_json::from_str(&json)?;
        assert_eq!(back, s);
        assert_eq!(serde_json::to_string(&back)?, json);
        Ok(())
    }

    #[test]
    fn the_same_seed_gives_the_same_run() -> Result<()> {
        let run = |seed| -> Result<Vec<Event>> {
            let mut s = scheduler(Direction::Minimize)?;
            Ok(simulate(&mut s, &Setup { seed, ..setup(3) })?.log)
        };
        assert_eq!(run(11)?, run(11)?);
        assert_ne!(run(11)?, run(12)?);
        Ok(())
    }

    fn negated_odd_curve(x: f64, step: u64) -> f64 {
        -odd_curve(x, step)
    }

    #[test]
    fn maximizing_a_negated_score_is_the_same_schedule() -> Result<()> {
        for workers in [1, 8] {
            let mut min = scheduler(Direction::Minimize)?;
            let a = simulate(
                &mut min,
                &Setup {
                    score: odd_curve,
                    ..setup(workers)
                },
            )?;
            let mut max = scheduler(Direction::Maximize)?;
            let b = simulate(
                &mut max,
                &Setup {
                    score: negated_odd_curve,
                    ..setup(workers)
                },
            )?;
            assert_eq!(a.log, b.log);
            assert!(a.exploits > 0);
        }
        Ok(())
    }

    #[test]
    fn new_validates_its_arguments() {
        let c = PbtConfig::default;
        let d = Direction::Minimize;
        assert_eq!(
            invalid_name(PbtScheduler::new(1, 4, 40, c(), d)),
            "population_size"
        );
        assert_eq!(
            invalid_name(PbtScheduler::new(4, 0, 40, c(), d)),
            "interval"
        );
        assert_eq!(invalid_name(PbtScheduler::new(4, 5, 4, c(), d)), "max_step");
        let s = PbtScheduler::new(2, 4, 4, c(), d);
        assert!(s.is_ok_and(|s| s.population_size() == 2 && s.members().is_empty()));
    }

    #[test]
    fn starts_are_reserved_until_registered_or_abandoned() -> Result<()> {
        let mut s = PbtScheduler::new(2, 2, 4, PbtConfig::default(), Direction::Minimize)?;
        assert_eq!(s.next_work()?, Work::Start { bracket: None });
        assert_eq!(s.next_work()?, Work::Start { bracket: None });
        // Both slots are reserved: nothing to run yet.
        assert_eq!(s.next_work()?, Work::Wait);
        s.abandon_start()?;
        assert_eq!(s.next_work()?, Work::Start { bracket: None });
        s.on_start(5)?;
        assert_eq!(invalid_name(s.on_start(5)), "trial");
        s.on_start(6)?;
        assert_eq!(invalid_name(s.on_start(7)), "trial");
        assert_eq!(invalid_name(s.abandon_start()), "pending_starts");
        assert_eq!(s.members(), [(5, 0), (6, 0)]);
        assert_eq!(s.next_work()?, Work::Wait);
        Ok(())
    }

    #[test]
    fn exploit_waits_for_a_saved_checkpoint_and_a_child_is_not_judged_where_it_resumed(
    ) -> Result<()> {
        let mut s = PbtScheduler::new(2, 2, 8, PbtConfig::default(), Direction::Minimize)?;
        let mut rng = TrialRng::from_seed(5);
        for trial in [0, 1] {
            s.next_work()?;
            s.on_start(trial)?;
        }
        let go_on = PbtDecision::Checkpoint { pause: false };
        assert_eq!(s.report(0, 1, 0.5, &mut rng)?, PbtDecision::Continue);
        assert_eq!(s.report(0, 2, 0.1, &mut rng)?, go_on);
        // #1 is the worst, paired with #0, whose checkpoint is not saved yet.
        assert_eq!(s.report(1, 2, 0.9, &mut rng)?, go_on);
        assert_eq!(invalid_name(s.on_saved(0, 1)), "step");
        s.on_saved(0, 2)?;
        s.on_saved(0, 2)?; // (idempotent)
        assert_eq!(s.report(0, 4, 0.1, &mut rng)?, go_on);
        // #0's checkpoint at 4 is not saved: #1 copies the latest saved one, at 2.
        let exploit = PbtDecision::Exploit { winner: 0, step: 2 };
        assert_eq!(s.report(1, 4, 0.9, &mut rng)?, exploit);
        // The loser has ended: it cannot report or save, and only its child is registered.
        assert_eq!(invalid_name(s.report(1, 5, 0.9, &mut rng)), "trial");
        assert_eq!(invalid_name(s.on_saved(1, 4)), "step");
        assert_eq!(invalid_name(s.on_child(1, 2, 4)), "step");
        assert_eq!(invalid_name(s.on_child(1, 0, 2)), "child");
        assert_eq!(invalid_name(s.on_child(0, 2, 2)), "loser");
        assert_eq!(invalid_name(s.on_child(9, 2, 2)), "loser");
        s.on_child(1, 2, 2)?;
        assert_eq!(s.members(), [(0, 4), (2, 2)]);
        assert_eq!(invalid_name(s.report(1, 5, 0.9, &mut rng)), "trial");
        assert_eq!(invalid_name(s.on_child(1, 3, 2)), "loser");
        // The child resumes after step 2: a report at 2 is refused, and it is first judged
        // at 4, with its own score.
        assert_eq!(invalid_name(s.report(2, 2, 0.0, &mut rng)), "step");
        assert_eq!(s.report(2, 3, 0.0, &mut rng)?, PbtDecision::Continue);
        assert_eq!(s.report(2, 4, 0.0, &mut rng)?, go_on);
        s.on_saved(2, 4)?;
        // Now #0 is the worst: it copies the child's checkpoint (a first rewind for slot 0).
        assert_eq!(
            s.report(0, 6, 0.5, &mut rng)?,
            PbtDecision::Exploit { winner: 2, step: 4 }
        );
        s.on_child(0, 3, 4)?;
        assert_eq!(s.members(), [(3, 4), (2, 4)]);
        assert_eq!(s.report(2, 6, 0.0, &mut rng)?, go_on);
        assert_eq!(s.report(2, 8, 0.0, &mut rng)?, PbtDecision::Complete);
        // A completed member stays in the ranking.
        s.on_saved(2, 6)?;
        assert_eq!(
            s.report(3, 6, 0.3, &mut rng)?,
            PbtDecision::Exploit { winner: 2, step: 6 }
        );
        s.on_child(3, 4, 6)?;
        assert_eq!(s.next_work()?, Work::Wait);
        assert_eq!(s.report(4, 8, 0.2, &mut rng)?, PbtDecision::Complete);
        assert_eq!(s.next_work()?, Work::Finished);
        Ok(())
    }

    #[test]
    fn a_diverged_member_is_exploited_in_either_direction() -> Result<()> {
        for direction in [Direction::Minimize, Direction::Maximize] {
            let mut s = PbtScheduler::new(4, 1, 3, PbtConfig::default(), direction)?;
            let mut rng = TrialRng::from_seed(8);
            for trial in 0..4 {
                s.next_work()?;
                s.on_start(trial)?;
            }
            // Each reporter is the best so far, so nobody exploits before the NaN.
            let values = if direction == Direction::Minimize {
                [5.0, 1.0, -1.0]
            } else {
                [-1.0, 1.0, 5.0]
            };
            for (trial, value) in (0..3).zip(values) {
                assert_eq!(
                    s.report(trial, 1, value, &mut rng)?,
                    PbtDecision::Checkpoint { pause: false }
                );
                s.on_saved(trial, 1)?;
            }
            // k = 1: the NaN member is the bottom one; #2 is the best.
            assert_eq!(
                s.report(3, 1, f64::NAN, &mut rng)?,
                PbtDecision::Exploit { winner: 2, step: 1 }
            );
        }
        Ok(())
    }

    #[test]
    fn paused_members_resume_once_saved_lowest_step_first() -> Result<()> {
        let mut s = PbtScheduler::new(3, 2, 6, PbtConfig::default(), Direction::Minimize)?;
        let mut rng = TrialRng::from_seed(2);
        let pause = PbtDecision::Checkpoint { pause: true };
        // #0 pauses at 2 for the slots that have not started. (Each reporter is the best so
        // far, so nobody exploits.)
        assert_eq!(s.next_work()?, Work::Start { bracket: None });
        s.on_start(0)?;
        assert_eq!(s.report(0, 2, 0.5, &mut rng)?, pause);
        s.on_saved(0, 2)?;
        s.next_work()?;
        s.on_start(1)?;
        assert_eq!(s.report(1, 2, 0.4, &mut rng)?, pause);
        // #1's checkpoint is not saved yet (its worker is still writing it).
        assert_eq!(s.next_work()?, Work::Start { bracket: None });
        s.on_start(2)?;
        // Nobody is behind the last one at 2: it goes on.
        assert_eq!(
            s.report(2, 2, 0.3, &mut rng)?,
            PbtDecision::Checkpoint { pause: false }
        );
        s.on_saved(2, 2)?;
        // At 4 the paused #0 and #1 are behind it.
        assert_eq!(s.report(2, 4, 0.2, &mut rng)?, pause);
        s.on_saved(2, 4)?;
        assert_eq!(
            s.next_work()?,
            Work::Resume {
                trial: 0,
                to_step: 4
            }
        );
        // #1 (step 2) waits for its save; #2 (step 4) is further along.
        assert_eq!(
            s.next_work()?,
            Work::Resume {
                trial: 2,
                to_step: 6
            }
        );
        assert_eq!(s.next_work()?, Work::Wait);
        s.on_saved(1, 2)?;
        assert_eq!(
            s.next_work()?,
            Work::Resume {
                trial: 1,
                to_step: 4
            }
        );
        assert_eq!(invalid_name(s.on_saved(1, 4)), "step");
        Ok(())
    }

    #[test]
    fn bad_reports_are_invalid_arguments() -> Result<()> {
        let mut s = PbtScheduler::new(2, 4, 8, PbtConfig::default(), Direction::Minimize)?;
        let mut rng = TrialRng::from_seed(4);
        assert_eq!(invalid_name(s.report(0, 1, 0.0, &mut rng)), "trial");
        assert_eq!(invalid_name(s.on_saved(0, 4)), "trial");
        assert_eq!(invalid_name(s.on_failed(0)), "trial");
        s.next_work()?;
        s.on_start(0)?;
        s.report(0, 2, 0.0, &mut rng)?;
        assert_eq!(invalid_name(s.report(0, 2, 0.0, &mut rng)), "step");
        assert_eq!(invalid_name(s.report(0, 1, 0.0, &mut rng)), "step");
        // Skipping the boundary at 4.
        let message = s
            .report(0, 5, 0.0, &mut rng)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("#0") && message.contains("boundary at step 4"),
            "{message}"
        );
        // Paused at 4 (slot 1 never started): not running.
        assert_eq!(
            s.report(0, 4, 0.0, &mut rng)?,
            PbtDecision::Checkpoint { pause: true }
        );
        let message = s
            .report(0, 5, 0.0, &mut rng)
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
    fn a_failed_member_is_replaced_by_a_fresh_one() -> Result<()> {
        let mut s = PbtScheduler::new(2, 2, 4, PbtConfig::default(), Direction::Minimize)?;
        let mut rng = TrialRng::from_seed(6);
        for trial in [0, 1] {
            s.next_work()?;
            s.on_start(trial)?;
        }
        s.report(0, 2, 0.1, &mut rng)?;
        s.on_saved(0, 2)?;
        s.on_failed(0)?;
        assert_eq!(s.members(), [(1, 0)]);
        // Its checkpoint can no longer be copied, and it can no longer report.
        assert_eq!(
            s.report(1, 2, 0.9, &mut rng)?,
            PbtDecision::Checkpoint { pause: true },
            "slot 0 is open again: #1 pauses for it"
        );
        let message = s
            .report(0, 3, 0.1, &mut rng)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("no longer a member"), "{message}");
        assert_eq!(invalid_name(s.on_failed(0)), "trial");
        assert_eq!(s.next_work()?, Work::Start { bracket: None });
        assert_eq!(invalid_name(s.on_start(0)), "trial");
        s.on_start(2)?;
        assert_eq!(s.members(), [(2, 0), (1, 2)]);
        assert_eq!(invalid_name(s.report(2, 4, 0.0, &mut rng)), "step");
        s.report(2, 2, 0.0, &mut rng)?;
        s.report(2, 4, 0.0, &mut rng)?;
        assert_eq!(invalid_name(s.on_failed(2)), "trial", "completed");
        Ok(())
    }

    #[test]
    fn corrupt_states_are_rejected_without_panicking() -> Result<()> {
        let mut s = scheduler(Direction::Minimize)?;
        let mut rng = TrialRng::from_seed(9);
        for trial in 0..3 {
            s.next_work()?;
            s.on_start(trial)?;
        }
        s.report(0, INTERVAL, 0.5, &mut rng)?;
        let good = serde_json::to_value(&s)?;
        let load = |v: &serde_json::Value| serde_json::from_value::<PbtScheduler>(v.clone());
        assert!(load(&good).is_ok());
        type Edit = Box<dyn Fn(&mut serde_json::Value)>;
        let edits: Vec<(&str, Edit)> = vec![
            (
                "one slot",
                Box::new(|v| v["slots"] = serde_json::json!([v["slots"][0]])),
            ),
            ("interval 0", Box::new(|v| v["interval"] = 0.into())),
            ("max_step 0", Box::new(|v| v["max_step"] = 0.into())),
            (
                "a trial twice",
                Box::new(|v| v["slots"][1]["phase"]["trial"] = 0.into()),
            ),
            (
                "a retired member",
                Box::new(|v| v["retired"] = serde_json::json!([1])),
            ),
            (
                "past max_step",
                Box::new(|v| v["slots"][0]["step"] = 99.into()),
            ),
            (
                "paused off a boundary",
                Box::new(|v| {
                    v["slots"][1]["phase"] = serde_json::json!({"kind": "paused", "trial": 1});
                    v["slots"][1]["step"] = 3.into();
                }),
            ),
            (
                "saved ahead",
                Box::new(|v| v["slots"][0]["saved"] = 8.into()),
            ),
            (
                "a bad score",
                Box::new(|v| v["slots"][0]["score"] = "lots".into()),
            ),
            (
                "a bad phase",
                Box::new(|v| v["slots"][0]["phase"] = "gone".into()),
            ),
            ("an extra field", Box::new(|v| v["extra"] = 1.into())),
            (
                "a bad config",
                Box::new(|v| v["config"]["quantile_fraction"] = 0.9.into()),
            ),
        ];
        for (what, edit) in edits {
            let mut bad = good.clone();
            edit(&mut bad);
            assert!(load(&bad).is_err(), "{what} was accepted");
        }
        Ok(())
    }

    /// One call of the protocol, with arguments drawn from small ranges so that both valid
    /// and invalid calls occur.
    #[derive(Clone, Debug)]
    enum Call {
        Next,
        Start(u64),
        Abandon,
        Report(u64, u64, f64, u64),
        Saved(u64, u64),
        Child(u64, u64, u64),
        Failed(u64),
    }

    fn any_call() -> impl Strategy<Value = Call> {
        let trial = 0..12_u64;
        let step = 0..10_u64;
        prop_oneof![
            3 => Just(Call::Next),
            2 => trial.clone().prop_map(Call::Start),
            1 => Just(Call::Abandon),
            6 => (
                trial.clone(),
                step.clone(),
                prop_oneof![Just(f64::NAN), -2.0..2.0_f64],
                any::<u64>()
            )
                .prop_map(|(t, s, v, seed)| Call::Report(t, s, v, seed)),
            3 => (trial.clone(), step.clone()).prop_map(|(t, s)| Call::Saved(t, s)),
            2 => (trial.clone(), trial.clone(), step).prop_map(|(a, b, s)| Call::Child(a, b, s)),
            1 => trial.prop_map(Call::Failed),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_call_sequence_keeps_a_valid_state(
            calls in proptest::collection::vec(any_call(), 0..80),
            population in 2usize..5,
        ) {
            let mut s = PbtScheduler::new(population, 2, 7, PbtConfig::default(), Direction::Minimize)
                .expect("valid");
            for call in calls {
                let before = s.clone();
                let outcome = match call {
                    Call::Next => s.next_work().map(|_| ()),
                    Call::Start(t) => s.on_start(t),
                    Call::Abandon => s.abandon_start(),
                    Call::Report(t, step, v, seed) => {
                        s.report(t, step, v, &mut TrialRng::from_seed(seed)).map(|_| ())
                    }
                    Call::Saved(t, step) => s.on_saved(t, step),
                    Call::Child(a, b, step) => s.on_child(a, b, step),
                    Call::Failed(t) => s.on_failed(t),
                };
                match outcome {
                    Ok(()) => prop_assert!(s.validate().is_ok(), "{:?}", s.validate()),
                    Err(e) => {
                        prop_assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
                        prop_assert_eq!(&s, &before, "a failed call changed the state");
                    }
                }
                let json = serde_json::to_string(&s).expect("serializes");
                let back: PbtScheduler = serde_json::from_str(&json).expect("reads back");
                prop_assert_eq!(&back, &s);
            }
        }
    }
}
