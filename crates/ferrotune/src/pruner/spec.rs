//! `PrunerSpec`: a pruner as data, stored with the study.

use super::{NopPruner, PatientPruner, PercentilePruner, Pruner, ThresholdPruner};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The serializable description of a pruner; defaults follow Optuna 5.0.
///
/// JSON form: `{"type": "nop"}`, `{"type": "median", "n_startup_trials": 5}`,
/// `{"type": "percentile", "percentile": 25.0}`, `{"type": "threshold", "upper": 1.0}`,
/// `{"type": "patient", "patience": 3, "wrapped": {"type": "median"}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum PrunerSpec {
    /// [`NopPruner`].
    Nop,
    /// [`PercentilePruner`] at the 50th percentile.
    Median {
        /// Completed trials needed before pruning starts (default 5).
        #[serde(default = "five")]
        n_startup_trials: u64,
        /// Steps before pruning starts within a trial (default 0).
        #[serde(default)]
        n_warmup_steps: u64,
        /// Check every this many steps (default 1).
        #[serde(default = "one")]
        interval_steps: u64,
        /// Completed trials needed at the step (default 1).
        #[serde(default = "one")]
        n_min_trials: u64,
    },
    /// [`PercentilePruner`].
    Percentile {
        /// The percentile, 0–100.
        percentile: f64,
        /// Completed trials needed before pruning starts (default 5).
        #[serde(default = "five")]
        n_startup_trials: u64,
        /// Steps before pruning starts within a trial (default 0).
        #[serde(default)]
        n_warmup_steps: u64,
        /// Check every this many steps (default 1).
        #[serde(default = "one")]
        interval_steps: u64,
        /// Completed trials needed at the step (default 1).
        #[serde(default = "one")]
        n_min_trials: u64,
    },
    /// [`ThresholdPruner`].
    Threshold {
        /// Prune below this value.
        #[serde(default)]
        lower: Option<f64>,
        /// Prune above this value.
        #[serde(default)]
        upper: Option<f64>,
        /// Steps before pruning starts (default 0).
        #[serde(default)]
        n_warmup_steps: u64,
        /// Check every this many steps (default 1).
        #[serde(default = "one")]
        interval_steps: u64,
    },
    /// [`PatientPruner`].
    Patient {
        /// Steps without improvement tolerated.
        patience: u64,
        /// Improvement smaller than this counts as none (default 0).
        #[serde(default)]
        min_delta: f64,
        /// The pruner consulted once patience runs out; none means prune.
        #[serde(default)]
        wrapped: Option<Box<PrunerSpec>>,
    },
    /// A pruner defined outside ferrotune, passed to the study builder as an object.
    Custom {
        /// The custom pruner's name.
        name: String,
    },
}

fn five() -> u64 {
    5
}
fn one() -> u64 {
    1
}

impl Default for PrunerSpec {
    /// The median pruner with Optuna's defaults.
    fn default() -> Self {
        PrunerSpec::median()
    }
}

impl PrunerSpec {
    /// The median pruner with Optuna's defaults.
    pub fn median() -> Self {
        PrunerSpec::Median {
            n_startup_trials: 5,
            n_warmup_steps: 0,
            interval_steps: 1,
            n_min_trials: 1,
        }
    }

    /// Builds the pruner, validating its parameters.
    pub fn build(&self) -> Result<Arc<dyn Pruner>> {
        Ok(match self {
            PrunerSpec::Nop => Arc::new(NopPruner),
            PrunerSpec::Median {
                n_startup_trials,
                n_warmup_steps,
                interval_steps,
                n_min_trials,
            } => Arc::new(PercentilePruner::new(
                50.0,
                *n_startup_trials,
                *n_warmup_steps,
                *interval_steps,
                *n_min_trials,
            )?),
            PrunerSpec::Percentile {
                percentile,
                n_startup_trials,
                n_warmup_steps,
                interval_steps,
                n_min_trials,
            } => Arc::new(PercentilePruner::new(
                *percentile,
                *n_startup_trials,
                *n_warmup_steps,
                *interval_steps,
                *n_min_trials,
            )?),
            PrunerSpec::Threshold {
                lower,
                upper,
                n_warmup_steps,
                interval_steps,
            } => Arc::new(ThresholdPruner::new(
                *lower,
                *upper,
                *n_warmup_steps,
                *interval_steps,
            )?),
            PrunerSpec::Patient {
                patience,
                min_delta,
                wrapped,
            } => {
                let inner = wrapped.as_ref().map(|w| w.build()).transpose()?;
                Arc::new(PatientPruner::new(inner, *patience, *min_delta)?)
            }
            PrunerSpec::Custom { name } => {
                return Err(Error::invalid_argument(
                    "pruner",
                    format!(
                        "the study uses the custom pruner `{name}`, which cannot be rebuilt from \
                         its stored spec; pass it with StudyBuilder::custom_pruner"
                    ),
                ))
            }
        })
    }

    /// The short name used by the CLI.
    pub fn name(&self) -> &str {
        match self {
            PrunerSpec::Nop => "nop",
            PrunerSpec::Median { .. } => "median",
            PrunerSpec::Percentile { .. } => "percentile",
            PrunerSpec::Threshold { .. } => "threshold",
            PrunerSpec::Patient { .. } => "patient",
            PrunerSpec::Custom { name } => name,
        }
    }
}
