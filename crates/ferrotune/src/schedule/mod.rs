//! Schedulers that pause and resume trials from checkpoints (see the design notes: "pause and
//! resume is one mechanism").
//!
//! This module starts with their *plans*: [`brackets`] holds synchronous successive halving
//! (Jamieson & Talwalkar 2016) and Hyperband (Li et al., JMLR 18(185), 2017) as pure,
//! deterministic, serializable values: how many configurations each bracket starts, at which
//! resources its rungs stop them, and how many of each rung go on ([`promotions`]). A
//! scheduler stores its plan with the study, so every worker rebuilds exactly the same one.
//!
//! [`decide`] holds the schedulers' decisions as pure, serializable state machines: what a
//! free worker does next ([`Work`]: start, resume a paused trial, or wait) and what a trial
//! does after a report ([`Decision`]: continue, pause, stop, complete), for ASHA with
//! promotion (Li et al., MLSys 2020), synchronous successive halving and synchronous
//! Hyperband.
//!
//! [`spec`] holds [`SchedulerSpec`], the scheduler as data stored with the study, and
//! [`checkpoint`] the checkpoint directory layout and reference counts; the study wires them
//! together (`study::scheduled`): the state lives in storage and is updated by
//! compare-and-set, so workers on many machines share one schedule.
//!
//! [`pbt`] holds Population Based Training's exploit and explore operators (Jaderberg et al.
//! 2017) as pure functions of a population's scores, a trial's parameters and a seeded
//! [`TrialRng`](crate::rng::TrialRng): which members copy which, and the parameters of the new
//! trial that continues from a copied checkpoint. [`pb2`] holds PB2's explore step
//! (Parker-Holder et al., NeurIPS 2020), which replaces PBT's random perturbation with a
//! time-varying Gaussian-process bandit over the population's history. [`population`] holds
//! PBT's asynchronous schedule as a pure, serializable state machine ([`PbtScheduler`]): which
//! member trains next, and whether a member at a boundary checkpoints, pauses or exploits.

pub mod brackets;
pub mod checkpoint;
pub mod decide;
pub mod pb2;
pub mod pbt;
pub mod population;
pub mod spec;

pub use brackets::{promotions, BracketPlan, HyperbandPlan, Rounding, Rung, SuccessiveHalvingPlan};
pub use checkpoint::{Checkpoint, CheckpointId, CheckpointStore, CheckpointWriter};
pub use decide::{AshaScheduler, Decision, SyncHyperbandScheduler, SyncShaScheduler, Work};
pub use pb2::{pb2_explore, Pb2Config, Pb2Observation};
pub use pbt::{exploit, explore, explore_value, quantile_size, PbtConfig};
pub use population::{PbtDecision, PbtScheduler};
pub use spec::{DecisionSteps, SchedulePlan, SchedulerSpec};
