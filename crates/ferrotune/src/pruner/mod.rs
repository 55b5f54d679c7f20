//! Pruners: they stop unpromising trials early, judged from the intermediate values every trial
//! has reported to storage, so the same decision is reached in any thread, process or machine.
//!
//! A trial asks through `Trial::should_prune` after reporting; the pruner answers from the
//! study's history. Pruners here are pure functions of that history (plus their
//! configuration).

mod nop;
mod patient;
mod percentile;
mod spec;
mod threshold;

pub use nop::NopPruner;
pub use patient::PatientPruner;
pub use percentile::{MedianPruner, PercentilePruner};
pub use spec::PrunerSpec;
pub use threshold::ThresholdPruner;

use crate::error::{Error, Result};
use crate::study::StudyView;
use crate::trial::FrozenTrial;

/// Decides whether a running trial should stop.
pub trait Pruner: Send + Sync + std::fmt::Debug {
    /// Whether `trial` (with the intermediate values it has reported so far) should be pruned.
    fn prune(&self, study: &StudyView<'_>, trial: &FrozenTrial) -> Result<bool>;
}

/// Errors unless the study has one objective, naming the pruner.
pub(crate) fn require_single_objective(study: &StudyView<'_>, pruner: &str) -> Result<()> {
    if study.directions().len() == 1 {
        Ok(())
    } else {
        Err(Error::Unsupported(format!(
            "{pruner} compares one objective, but the study has {}; use NopPruner for \
             multi-objective studies",
            study.directions().len()
        )))
    }
}

/// Whether `step` is the first reported step of its pruning interval (Optuna's rule): with
/// warm-up `w` and interval `k`, pruning is checked at the first report at or after each of
/// `w, w + k, w + 2k, …`.
pub(crate) fn is_first_in_interval(
    trial: &FrozenTrial,
    step: u64,
    n_warmup_steps: u64,
    interval_steps: u64,
) -> bool {
    let interval = interval_steps.max(1);
    let lower = (step.saturating_sub(n_warmup_steps)) / interval * interval + n_warmup_steps;
    match trial.intermediate_values.range(..step).next_back() {
        None => true,
        Some((&previous, _)) => previous < lower,
    }
}
