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
//! [`pbt`] holds Population Based Training's exploit and explore operators (Jaderberg et al.
//! 2017) as pure functions of a population's scores, a trial's parameters and a seeded
//! [`TrialRng`](crate::rng::TrialRng): which members copy which, and the parameters of the new
//! trial that continues from a copied checkpoint.

pub mod brackets;
pub mod decide;
pub mod pbt;

pub use brackets::{promotions, BracketPlan, HyperbandPlan, Rounding, Rung, SuccessiveHalvingPlan};
pub use decide::{AshaScheduler, Decision, SyncHyperbandScheduler, SyncShaScheduler, Work};
pub use pbt::{exploit, explore, explore_value, quantile_size, PbtConfig};
