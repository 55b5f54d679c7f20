//! `PrunerSpec`: a pruner as data, stored with the study.

use super::{
    HyperbandPruner, NopPruner, PatientPruner, PercentilePruner, Pruner, SuccessiveHalvingPruner,
    ThresholdPruner, WilcoxonPruner,
};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A resource bound of the multi-fidelity pruners, in steps: a fixed count, or "auto" to
/// decide it from the first completed trials (see [`SuccessiveHalvingPruner`] and
/// [`HyperbandPruner`] for how each decides).
///
/// JSON form: a non-negative integer, or the string `"auto"` (Optuna's spelling).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "ResourceRepr", into = "ResourceRepr")]
pub enum Resource {
    /// Decided from the study once a trial has completed, then stored with the study.
    #[default]
    Auto,
    /// This many steps.
    Steps(u64),
}

impl From<u64> for Resource {
    fn from(steps: u64) -> Self {
        Resource::Steps(steps)
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Auto => f.write_str("auto"),
            Resource::Steps(n) => write!(f, "{n}"),
        }
    }
}

/// [`Resource`]'s JSON form.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum ResourceRepr {
    Steps(u64),
    Other(serde_json::Value),
}

impl TryFrom<ResourceRepr> for Resource {
    type Error = String;
    fn try_from(r: ResourceRepr) -> std::result::Result<Self, String> {
        match r {
            ResourceRepr::Steps(n) => Ok(Resource::Steps(n)),
            ResourceRepr::Other(serde_json::Value::String(s)) if s == "auto" => Ok(Resource::Auto),
            ResourceRepr::Other(v) => Err(format!(
                "a resource is a number of steps (a non-negative integer) or \"auto\", got {v}"
            )),
        }
    }
}

impl From<Resource> for ResourceRepr {
    fn from(r: Resource) -> Self {
        match r {
            Resource::Auto => ResourceRepr::Other(serde_json::Value::from("auto")),
            Resource::Steps(n) => ResourceRepr::Steps(n),
        }
    }
}

/// The serializable description of a pruner; defaults follow Optuna 5.0.
///
/// JSON form: `{"type": "nop"}`, `{"type": "median", "n_startup_trials": 5}`,
/// `{"type": "percentile", "percentile": 25.0}`, `{"type": "threshold", "upper": 1.0}`,
/// `{"type": "patient", "patience": 3, "wrapped": {"type": "median"}}`,
/// `{"type": "successive_halving", "min_resource": 1, "reduction_factor": 3}`,
/// `{"type": "hyperband", "max_resource": 81}`, `{"type": "wilcoxon", "p_threshold": 0.05}`.
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
    /// [`SuccessiveHalvingPruner`]: asynchronous successive halving (ASHA), stopping form.
    SuccessiveHalving {
        /// Steps of the first rung, or `"auto"` (default: decided from the first completed
        /// trial).
        #[serde(default)]
        min_resource: Resource,
        /// η: rungs grow by η, and `1/η` of each rung is promoted (default 4).
        #[serde(default = "four")]
        reduction_factor: u64,
        /// Rungs skipped before the first decision (default 0).
        #[serde(default)]
        min_early_stopping_rate: u64,
        /// Values a rung needs before it promotes anything (default 0; needs a fixed
        /// `min_resource`).
        #[serde(default)]
        bootstrap_count: u64,
    },
    /// [`HyperbandPruner`]: brackets of successive halving.
    Hyperband {
        /// The smallest resource, in steps (default 1).
        #[serde(default = "one")]
        min_resource: u64,
        /// The largest resource, or `"auto"` (default: the first completed trials' last
        /// step + 1).
        #[serde(default)]
        max_resource: Resource,
        /// η (default 3).
        #[serde(default = "three")]
        reduction_factor: u64,
        /// As in each bracket's successive halving (default 0; needs a fixed
        /// `max_resource`).
        #[serde(default)]
        bootstrap_count: u64,
    },
    /// [`WilcoxonPruner`]: a signed-rank test against the best trial, for averaged
    /// objectives.
    Wilcoxon {
        /// Prune when the p-value is below this (default 0.1).
        #[serde(default = "p_threshold")]
        p_threshold: f64,
        /// Shared steps needed before the first test (default 2; at least 2 are always
        /// needed).
        #[serde(default = "two")]
        n_startup_steps: u64,
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
fn two() -> u64 {
    2
}
fn three() -> u64 {
    3
}
fn four() -> u64 {
    4
}
fn p_threshold() -> f64 {
    0.1
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

    /// Successive halving with Optuna's defaults: `min_resource = "auto"`, η = 4.
    pub fn successive_halving() -> Self {
        PrunerSpec::SuccessiveHalving {
            min_resource: Resource::Auto,
            reduction_factor: 4,
            min_early_stopping_rate: 0,
            bootstrap_count: 0,
        }
    }

    /// Hyperband with Optuna's defaults: `min_resource = 1`, `max_resource = "auto"`, η = 3.
    pub fn hyperband() -> Self {
        PrunerSpec::Hyperband {
            min_resource: 1,
            max_resource: Resource::Auto,
            reduction_factor: 3,
            bootstrap_count: 0,
        }
    }

    /// The Wilcoxon pruner with Optuna's defaults: `p_threshold = 0.1`, `n_startup_steps = 2`.
    pub fn wilcoxon() -> Self {
        PrunerSpec::Wilcoxon {
            p_threshold: 0.1,
            n_startup_steps: 2,
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
            PrunerSpec::SuccessiveHalving {
                min_resource,
                reduction_factor,
                min_early_stopping_rate,
                bootstrap_count,
            } => Arc::new(SuccessiveHalvingPruner::new(
                *min_resource,
                *reduction_factor,
                *min_early_stopping_rate,
                *bootstrap_count,
            )?),
            PrunerSpec::Hyperband {
                min_resource,
                max_resource,
                reduction_factor,
                bootstrap_count,
            } => Arc::new(HyperbandPruner::new(
                *min_resource,
                *max_resource,
                *reduction_factor,
                *bootstrap_count,
            )?),
            PrunerSpec::Wilcoxon {
                p_threshold,
                n_startup_steps,
            } => Arc::new(WilcoxonPruner::new(*p_threshold, *n_startup_steps)?),
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
            PrunerSpec::SuccessiveHalving { .. } => "successive_halving",
            PrunerSpec::Hyperband { .. } => "hyperband",
            PrunerSpec::Wilcoxon { .. } => "wilcoxon",
            PrunerSpec::Custom { name } => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> std::result::Result<PrunerSpec, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn multi_fidelity_defaults_are_optunas() -> serde_json::Result<()> {
        assert_eq!(
            parse(json!({"type": "successive_halving"}))?,
            PrunerSpec::successive_halving()
        );
        assert_eq!(
            parse(json!({"type": "hyperband"}))?,
            PrunerSpec::hyperband()
        );
        assert_eq!(parse(json!({"type": "wilcoxon"}))?, PrunerSpec::wilcoxon());
        assert_eq!(
            PrunerSpec::successive_halving(),
            PrunerSpec::SuccessiveHalving {
                min_resource: Resource::Auto,
                reduction_factor: 4,
                min_early_stopping_rate: 0,
                bootstrap_count: 0
            }
        );
        Ok(())
    }

    #[test]
    fn resources_are_integers_or_auto() -> serde_json::Result<()> {
        let spec = parse(json!({"type": "hyperband", "min_resource": 2, "max_resource": 81}))?;
        assert_eq!(
            spec,
            PrunerSpec::Hyperband {
                min_resource: 2,
                max_resource: Resource::Steps(81),
                reduction_factor: 3,
                bootstrap_count: 0
            }
        );
        let sha = parse(json!({"type": "successive_halving", "min_resource": "auto"}))?;
        assert_eq!(sha, PrunerSpec::successive_halving());
        // Round trip, with "auto" written as a string and counts as numbers.
        for spec in [
            spec,
            sha,
            PrunerSpec::wilcoxon(),
            PrunerSpec::SuccessiveHalving {
                min_resource: Resource::Steps(5),
                reduction_factor: 2,
                min_early_stopping_rate: 1,
                bootstrap_count: 3,
            },
        ] {
            let text = serde_json::to_value(&spec)?;
            assert_eq!(parse(text)?, spec);
        }
        assert_eq!(
            serde_json::to_value(PrunerSpec::hyperband())?["max_resource"],
            json!("auto")
        );
        for bad in [json!("often"), json!(-1), json!(1.5), json!(null)] {
            let err = parse(json!({"type": "successive_halving", "min_resource": bad}))
                .expect_err("invalid resource")
                .to_string();
            assert!(err.contains("auto"), "{err}");
        }
        assert!(
            parse(json!({"type": "wilcoxon", "p": 0.1})).is_err(),
            "unknown field"
        );
        Ok(())
    }

    #[test]
    fn build_validates() {
        assert!(PrunerSpec::successive_halving().build().is_ok());
        assert!(PrunerSpec::hyperband().build().is_ok());
        assert!(PrunerSpec::wilcoxon().build().is_ok());
        let bad = PrunerSpec::SuccessiveHalving {
            min_resource: Resource::Auto,
            reduction_factor: 4,
            min_early_stopping_rate: 0,
            bootstrap_count: 1,
        };
        assert!(matches!(
            bad.build(),
            Err(Error::InvalidArgument {
                name: "bootstrap_count",
                ..
            })
        ));
        let bad = PrunerSpec::Hyperband {
            min_resource: 1,
            max_resource: Resource::Steps(27),
            reduction_factor: 1,
            bootstrap_count: 0,
        };
        assert!(matches!(
            bad.build(),
            Err(Error::InvalidArgument {
                name: "reduction_factor",
                ..
            })
        ));
        let bad = PrunerSpec::Wilcoxon {
            p_threshold: 2.0,
            n_startup_steps: 2,
        };
        assert!(matches!(
            bad.build(),
            Err(Error::InvalidArgument {
                name: "p_threshold",
                ..
            })
        ));
        assert_eq!(PrunerSpec::hyperband().name(), "hyperband");
        assert_eq!(
            PrunerSpec::successive_halving().name(),
            "successive_halving"
        );
        assert_eq!(PrunerSpec::wilcoxon().name(), "wilcoxon");
    }
}
