//! Samplers: they propose parameter values from the study's history and their own seeded
//! random stream.
//!
//! # The contract
//! A live trial asks its sampler in this order:
//! 1. [`Sampler::before_trial`] once, when the trial is created;
//! 2. on the first `suggest`, [`Sampler::infer_relative_search_space`] and, when that space is
//!    not empty, [`Sampler::sample_relative`] once — a sampler that models the joint space
//!    (multivariate TPE, GP, CMA-ES, QMC) proposes all of its parameters together here;
//! 3. [`Sampler::sample_independent`] for every parameter the relative step did not cover
//!    (conditional parameters, or every parameter for samplers without a joint model);
//! 4. [`Sampler::after_trial`] when the trial is told, before its final state is written.
//!
//! Samplers take `&self` and are shared by every thread of a study; whatever must be shared
//! across workers lives in storage, never only in the sampler. All randomness comes from the
//! [`TrialRng`] they are handed, derived from the study seed, so they never own a seed.

mod bohb;
mod grid;
mod partial_fixed;
mod qmc;
mod random;
mod spec;
mod tpe;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use bohb::{BohbConfig, BohbSampler};
pub use grid::GridSampler;
pub use partial_fixed::PartialFixedSampler;
pub use qmc::{QmcKind, QmcSampler};
pub use random::RandomSampler;
pub use spec::SamplerSpec;
pub use tpe::{TpeConfig, TpeSampler};

use crate::error::Result;
use crate::rng::TrialRng;
use crate::space::Distribution;
use crate::study::StudyView;
use crate::trial::{FrozenTrial, TrialState};
use std::collections::BTreeMap;

/// Parameter names with their distributions: the space a relative sampler models jointly.
pub type SearchSpace = BTreeMap<String, Distribution>;

/// The parameters of `trial` that can take more than one value, with their distributions.
pub(crate) fn varying_params(trial: &FrozenTrial) -> SearchSpace {
    trial
        .params
        .distributions()
        .filter(|(_, d)| !d.is_single())
        .map(|(n, d)| (n.to_owned(), d.clone()))
        .collect()
}

/// One step of the intersection search space: the first trial (`space` is `None`) brings
/// its [`varying_params`], every later one keeps only the parameters it has with the same
/// distribution.
pub(crate) fn intersect_with(space: &mut Option<SearchSpace>, trial: &FrozenTrial) {
    match space {
        None => *space = Some(varying_params(trial)),
        Some(s) => s.retain(|n, d| trial.params.distribution(n) == Some(d)),
    }
}

/// Proposes parameter values. Only [`Sampler::sample_independent`] is required.
pub trait Sampler: Send + Sync + std::fmt::Debug {
    /// Proposes the internal value of one parameter, given the study so far. `trial` is the
    /// trial being sampled, with the parameters it already has.
    fn sample_independent(
        &self,
        study: &StudyView<'_>,
        trial: &FrozenTrial,
        name: &str,
        distribution: &Distribution,
        rng: &mut TrialRng,
    ) -> Result<f64>;

    /// The parameters this sampler proposes jointly for `trial` (empty by default).
    fn infer_relative_search_space(
        &self,
        _study: &StudyView<'_>,
        _trial: &FrozenTrial,
    ) -> Result<SearchSpace> {
        Ok(SearchSpace::new())
    }

    /// Proposes internal values for (a subset of) `space`, jointly. Values missing from the
    /// result, or outside the distribution a trial then asks for, fall back to
    /// [`Sampler::sample_independent`].
    fn sample_relative(
        &self,
        _study: &StudyView<'_>,
        _trial: &FrozenTrial,
        _space: &SearchSpace,
        _rng: &mut TrialRng,
    ) -> Result<BTreeMap<String, f64>> {
        Ok(BTreeMap::new())
    }

    /// Whether the sampler has nothing left to propose (a used-up grid); checked before a new
    /// trial is created, so a study stops instead of creating a trial it cannot fill.
    fn exhausted(&self, _study: &StudyView<'_>) -> Result<bool> {
        Ok(false)
    }

    /// Called once when a trial is created. Returns whether it wrote to the trial in storage
    /// (its attributes, say), so the trial is read back before the objective sees it; the
    /// default writes nothing and returns `false`.
    fn before_trial(&self, _study: &StudyView<'_>, _trial: &FrozenTrial) -> Result<bool> {
        Ok(false)
    }

    /// Called when a trial is told, before its final state is written.
    fn after_trial(
        &self,
        _study: &StudyView<'_>,
        _trial: &FrozenTrial,
        _state: TrialState,
        _values: Option<&[f64]>,
    ) -> Result<()> {
        Ok(())
    }
}
