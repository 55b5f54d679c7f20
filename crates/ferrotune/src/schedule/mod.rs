//! Schedulers that pause and resume trials from checkpoints (see the design notes: "pause and
//! resume is one mechanism").
//!
//! This module starts with their *plans*: [`brackets`] holds synchronous successive halving
//! (Jamieson & Talwalkar 2016) and Hyperband (Li et al., JMLR 18(185), 2017) as pure,
//! deterministic, serializable values: how many configurations each bracket starts, at which
//! resources its rungs stop them, and how many of each rung go on ([`promotions`]). A
//! scheduler stores its plan with the study, so every worker rebuilds exactly the same one.

pub mod brackets;

pub use brackets::{promotions, BracketPlan, HyperbandPlan, Rounding, Rung, SuccessiveHalvingPlan};
