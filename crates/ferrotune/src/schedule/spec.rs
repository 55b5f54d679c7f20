//! `SchedulerSpec`: a pause-and-resume scheduler as data, stored with the study so that every
//! worker rebuilds the same one (see the design notes: "configuration is data").

use crate::error::{Error, Result};
use crate::schedule::brackets::{HyperbandPlan, Rounding, SuccessiveHalvingPlan};
use crate::schedule::decide::check_max_concurrent_brackets;
use crate::schedule::pb2::Pb2Config;
use crate::schedule::pbt::PbtConfig;
use serde::{Deserialize, Serialize};

/// Which pause-and-resume scheduler a study runs, if any.
///
/// A scheduler decides, for every report of a running trial, whether it continues, pauses
/// with a checkpoint, stops, or hands over to a new trial (PBT); and, for every free worker,
/// whether it starts a new configuration or resumes a paused trial. Without one (the default)
/// trials run to the end unless the study's *pruner* stops them — the stopping-only
/// variants of successive halving and Hyperband live there
/// ([`PrunerSpec`](crate::PrunerSpec)).
///
/// Serialized with a `type` tag, e.g. `{"type": "asha", "min_resource": 1, "max_resource":
/// 27}`; `eta` defaults to 3 (Hyperband's default, Li et al. 2017) and
/// `max_concurrent_brackets` to 1 (written only when it is not 1, so specs stored before it
/// existed, and specs that leave it at 1, read and write alike).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SchedulerSpec {
    /// No scheduler: the pruner alone decides.
    #[default]
    None,
    /// ASHA with promotion (Li et al., MLSys 2020): trials pause at each rung and free workers
    /// promote the best of each rung or start new configurations; no worker ever waits.
    Asha {
        /// The first rung's step (≥ 1).
        min_resource: u64,
        /// The last rung's step: a trial that reaches it is complete.
        max_resource: u64,
        /// The reduction factor η (≥ 2).
        #[serde(default = "default_eta")]
        eta: u64,
    },
    /// Synchronous successive halving (Jamieson & Talwalkar 2016): `n_configs`
    /// configurations start at `min_resource`, the best `1/η` of each rung go on when the
    /// whole rung has reported; then a new bracket starts.
    SuccessiveHalving {
        /// Configurations per bracket.
        n_configs: u64,
        /// The first rung's step (≥ 1).
        min_resource: u64,
        /// The last rung's step.
        max_resource: u64,
        /// The reduction factor η (≥ 2).
        #[serde(default = "default_eta")]
        eta: u64,
        /// The most brackets that run at once (≥ 1; default 1, one bracket after another, the
        /// papers' schedule). Above 1, a free worker that every running bracket would leave
        /// waiting opens the next bracket, as HpBandSter does.
        #[serde(default = "one", skip_serializing_if = "is_one")]
        max_concurrent_brackets: u64,
    },
    /// Synchronous Hyperband (Li et al., JMLR 2017): its brackets one after another (or up to
    /// `max_concurrent_brackets` at once), each a synchronous successive halving.
    Hyperband {
        /// The smallest resource a bracket starts at (≥ 1).
        min_resource: u64,
        /// The maximum resource R.
        max_resource: u64,
        /// The reduction factor η (≥ 2).
        #[serde(default = "default_eta")]
        eta: u64,
        /// How bracket sizes are rounded: the paper's ceiling (default) or HpBandSter's floor.
        #[serde(default)]
        rounding: Rounding,
        /// The most brackets that run at once (≥ 1; default 1, one bracket after another, the
        /// papers' schedule). Above 1, a free worker that every running bracket would leave
        /// waiting opens the next bracket, as HpBandSter does.
        #[serde(default = "one", skip_serializing_if = "is_one")]
        max_concurrent_brackets: u64,
    },
    /// BOHB (Falkner, Klein & Hutter, ICML 2018): Hyperband's brackets with BOHB's model as
    /// the sampler. The study's sampler must be [`SamplerSpec::Bohb`](crate::SamplerSpec)
    /// (the builder picks it when none is given).
    Bohb {
        /// The smallest resource a bracket starts at (≥ 1).
        min_resource: u64,
        /// The maximum resource R.
        max_resource: u64,
        /// The reduction factor η (≥ 2).
        #[serde(default = "default_eta")]
        eta: u64,
        /// The most brackets that run at once (≥ 1; default 1, one bracket after another, the
        /// papers' schedule). Above 1, a free worker that every running bracket would leave
        /// waiting opens the next bracket, as HpBandSter does.
        #[serde(default = "one", skip_serializing_if = "is_one")]
        max_concurrent_brackets: u64,
    },
    /// Population Based Training (Jaderberg et al. 2017): `population_size` members trained
    /// in intervals of `interval` steps up to `max_step`; at each interval the bottom
    /// quantile continues from a top member's checkpoint with explored parameters, as a new
    /// trial linked to its parent.
    Pbt {
        /// Members trained at once (≥ 2).
        population_size: usize,
        /// Steps between exploit/explore decisions (≥ 1).
        interval: u64,
        /// The step at which a member is complete.
        max_step: u64,
        /// Exploit and explore settings (Ray Tune's defaults).
        #[serde(default)]
        config: PbtConfig,
    },
    /// PB2 (Parker-Holder et al., NeurIPS 2020): PBT whose explore step picks the new
    /// numeric parameters with a time-varying GP bandit instead of random perturbations
    /// (categorical parameters are still perturbed as in PBT).
    Pb2 {
        /// Members trained at once (≥ 2).
        population_size: usize,
        /// Steps between exploit/explore decisions (≥ 1).
        interval: u64,
        /// The step at which a member is complete.
        max_step: u64,
        /// Exploit settings (the quantiles; PBT's perturbation factors and resampling only
        /// apply to categorical parameters).
        #[serde(default)]
        config: PbtConfig,
        /// The GP bandit's settings.
        #[serde(default)]
        pb2: Pb2Config,
    },
}

/// The steps at which a scheduler may decide something (see
/// [`SchedulerSpec::decision_steps`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecisionSteps {
    /// These steps, ascending.
    At(Vec<u64>),
    /// Every multiple of `interval`, and `last`.
    Every {
        /// The spacing of the boundaries.
        interval: u64,
        /// The last step.
        last: u64,
    },
}

impl DecisionSteps {
    fn of_plan(plan: &HyperbandPlan) -> Self {
        let mut steps: Vec<u64> = plan
            .brackets()
            .iter()
            .flat_map(|b| b.rungs.iter().map(|r| r.resource))
            .collect();
        steps.sort_unstable();
        steps.dedup();
        DecisionSteps::At(steps)
    }

    /// Whether a decision step lies in `(after, upto]`: a trial that last reported at
    /// `after` (or resumed from it) and now reports `upto` has reached or passed one.
    pub fn any_in(&self, after: u64, upto: u64) -> bool {
        if upto <= after {
            return false;
        }
        match self {
            DecisionSteps::At(steps) => {
                let i = steps.partition_point(|&s| s <= after);
                steps.get(i).is_some_and(|&s| s <= upto)
            }
            DecisionSteps::Every { interval, last } => {
                upto >= *last || (*interval > 0 && upto / interval > after / interval)
            }
        }
    }
}

fn default_eta() -> u64 {
    3
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

impl SchedulerSpec {
    /// Whether this is [`SchedulerSpec::None`].
    pub fn is_none(&self) -> bool {
        matches!(self, SchedulerSpec::None)
    }

    /// Whether this scheduler needs BOHB's sampler.
    pub fn wants_bohb_sampler(&self) -> bool {
        matches!(self, SchedulerSpec::Bohb { .. })
    }

    /// Whether this is a population scheduler (PBT or PB2), which creates child trials.
    pub fn is_population(&self) -> bool {
        matches!(self, SchedulerSpec::Pbt { .. } | SchedulerSpec::Pb2 { .. })
    }

    /// The step at which a trial is complete, if the scheduler has one.
    pub fn max_step(&self) -> Option<u64> {
        match self {
            SchedulerSpec::None => None,
            SchedulerSpec::Asha { max_resource, .. }
            | SchedulerSpec::SuccessiveHalving { max_resource, .. }
            | SchedulerSpec::Hyperband { max_resource, .. }
            | SchedulerSpec::Bohb { max_resource, .. } => Some(*max_resource),
            SchedulerSpec::Pbt { max_step, .. } | SchedulerSpec::Pb2 { max_step, .. } => {
                Some(*max_step)
            }
        }
    }

    /// The steps at which the scheduler may decide something other than "continue", for
    /// any trial: every rung of every bracket (successive halving, Hyperband, ASHA) or every
    /// interval boundary and the last step (PBT, PB2). A report at any other step is
    /// answered "continue" without consulting the stored state, so only decision steps pay
    /// for the round trip to storage. Empty without a scheduler.
    pub fn decision_steps(&self) -> DecisionSteps {
        match self.plan() {
            Ok(SchedulePlan::Asha(plan)) | Ok(SchedulePlan::SuccessiveHalving { plan, .. }) => {
                DecisionSteps::At(plan.bracket().rungs.iter().map(|r| r.resource).collect())
            }
            Ok(SchedulePlan::Hyperband { plan, .. }) => DecisionSteps::of_plan(&plan),
            Ok(SchedulePlan::Population {
                interval, max_step, ..
            }) => DecisionSteps::Every {
                interval,
                last: max_step,
            },
            Ok(SchedulePlan::None) | Err(_) => DecisionSteps::At(Vec::new()),
        }
    }

    /// A short name for logs and tables (`asha`, `hyperband`, …).
    pub fn name(&self) -> &'static str {
        match self {
            SchedulerSpec::None => "none",
            SchedulerSpec::Asha { .. } => "asha",
            SchedulerSpec::SuccessiveHalving { .. } => "successive_halving",
            SchedulerSpec::Hyperband { .. } => "hyperband",
            SchedulerSpec::Bohb { .. } => "bohb",
            SchedulerSpec::Pbt { .. } => "pbt",
            SchedulerSpec::Pb2 { .. } => "pb2",
        }
    }

    /// Checks the settings: the same errors the scheduler's constructor gives, naming the
    /// field and the fix.
    pub fn validate(&self) -> Result<()> {
        self.plan().map(|_| ())
    }

    /// The validated plan this spec describes: the rungs and brackets of the successive
    /// halving family, or the population's shape. One place turns a spec into plans, for
    /// [`validate`](Self::validate), [`decision_steps`](Self::decision_steps) and the
    /// study's scheduler.
    pub fn plan(&self) -> Result<SchedulePlan> {
        Ok(match self {
            SchedulerSpec::None => SchedulePlan::None,
            SchedulerSpec::Asha {
                min_resource,
                max_resource,
                eta,
            } => SchedulePlan::Asha(SuccessiveHalvingPlan::new(
                1,
                *min_resource,
                *max_resource,
                *eta,
            )?),
            SchedulerSpec::SuccessiveHalving {
                n_configs,
                min_resource,
                max_resource,
                eta,
                max_concurrent_brackets,
            } => {
                check_max_concurrent_brackets(*max_concurrent_brackets)?;
                SchedulePlan::SuccessiveHalving {
                    plan: SuccessiveHalvingPlan::new(
                        *n_configs,
                        *min_resource,
                        *max_resource,
                        *eta,
                    )?,
                    max_concurrent_brackets: *max_concurrent_brackets,
                }
            }
            SchedulerSpec::Hyperband {
                min_resource,
                max_resource,
                eta,
                rounding,
                max_concurrent_brackets,
            } => {
                check_max_concurrent_brackets(*max_concurrent_brackets)?;
                SchedulePlan::Hyperband {
                    plan: HyperbandPlan::new(*max_resource, *min_resource, *eta)?
                        .with_rounding(*rounding),
                    max_concurrent_brackets: *max_concurrent_brackets,
                }
            }
            SchedulerSpec::Bohb {
                min_resource,
                max_resource,
                eta,
                max_concurrent_brackets,
            } => {
                check_max_concurrent_brackets(*max_concurrent_brackets)?;
                SchedulePlan::Hyperband {
                    plan: HyperbandPlan::new(*max_resource, *min_resource, *eta)?,
                    max_concurrent_brackets: *max_concurrent_brackets,
                }
            }
            SchedulerSpec::Pbt {
                population_size,
                interval,
                max_step,
                config,
            }
            | SchedulerSpec::Pb2 {
                population_size,
                interval,
                max_step,
                config,
                ..
            } => {
                if let SchedulerSpec::Pb2 { pb2, .. } = self {
                    pb2.validate()?;
                }
                if *population_size < 2 {
                    return Err(Error::invalid_argument(
                        "population_size",
                        format!(
                            "a population needs at least 2 members to exploit one another, got \
                             {population_size}; Jaderberg et al. use 10 to 80"
                        ),
                    ));
                }
                if *interval == 0 || interval > max_step {
                    return Err(Error::invalid_argument(
                        "interval",
                        format!(
                            "must be in 1..=max_step ({max_step}), got {interval}; it is the \
                             number of steps between two exploit/explore decisions"
                        ),
                    ));
                }
                SchedulePlan::Population {
                    population_size: *population_size,
                    interval: *interval,
                    max_step: *max_step,
                    config: config.clone(),
                }
            }
        })
    }
}

/// What a [`SchedulerSpec`] describes, validated (see [`SchedulerSpec::plan`]).
#[derive(Clone, Debug, PartialEq)]
pub enum SchedulePlan {
    /// No scheduler.
    None,
    /// ASHA's single bracket of rungs.
    Asha(SuccessiveHalvingPlan),
    /// Synchronous successive halving.
    SuccessiveHalving {
        /// The bracket.
        plan: SuccessiveHalvingPlan,
        /// How many brackets may run at once.
        max_concurrent_brackets: u64,
    },
    /// Synchronous Hyperband (also BOHB's brackets).
    Hyperband {
        /// The brackets.
        plan: HyperbandPlan,
        /// How many brackets may run at once.
        max_concurrent_brackets: u64,
    },
    /// A PBT or PB2 population.
    Population {
        /// Members trained at once.
        population_size: usize,
        /// Steps between exploit/explore decisions.
        interval: u64,
        /// The step at which a member is complete.
        max_step: u64,
        /// Exploit and explore settings.
        config: PbtConfig,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_and_default_eta() {
        let spec: SchedulerSpec =
            serde_json::from_str(r#"{"type":"asha","min_resource":1,"max_resource":27}"#).unwrap();
        assert_eq!(
            spec,
            SchedulerSpec::Asha {
                min_resource: 1,
                max_resource: 27,
                eta: 3
            }
        );
        for spec in [
            SchedulerSpec::None,
            spec,
            SchedulerSpec::Hyperband {
                min_resource: 1,
                max_resource: 81,
                eta: 3,
                rounding: Rounding::FloorRatio,
                max_concurrent_brackets: 4,
            },
            SchedulerSpec::Pbt {
                population_size: 8,
                interval: 4,
                max_step: 40,
                config: PbtConfig::default(),
            },
        ] {
            let text = serde_json::to_string(&spec).unwrap();
            assert_eq!(serde_json::from_str::<SchedulerSpec>(&text).unwrap(), spec);
            spec.validate().unwrap();
        }
    }

    #[test]
    fn decision_steps_are_the_rungs_of_every_bracket_or_the_boundaries() {
        let hb = SchedulerSpec::Hyperband {
            min_resource: 1,
            max_resource: 9,
            eta: 3,
            rounding: Rounding::Ceil,
            max_concurrent_brackets: 1,
        };
        assert_eq!(hb.decision_steps(), DecisionSteps::At(vec![1, 3, 9]));
        let steps = hb.decision_steps();
        assert!(steps.any_in(0, 1) && steps.any_in(1, 3) && steps.any_in(2, 5));
        assert!(!steps.any_in(1, 2) && !steps.any_in(3, 8) && !steps.any_in(9, 20));
        let pbt = SchedulerSpec::Pbt {
            population_size: 4,
            interval: 4,
            max_step: 10,
            config: PbtConfig::default(),
        }
        .decision_steps();
        assert!(pbt.any_in(3, 4) && pbt.any_in(5, 9) && pbt.any_in(9, 10));
        assert!(!pbt.any_in(4, 7) && !pbt.any_in(0, 3));
        assert_eq!(
            SchedulerSpec::None.decision_steps(),
            DecisionSteps::At(vec![])
        );
    }

    #[test]
    fn max_concurrent_brackets_defaults_to_one_and_is_validated() {
        let text = r#"{"type":"bohb","min_resource":1,"max_resource":27}"#;
        let spec: SchedulerSpec = serde_json::from_str(text).unwrap();
        assert_eq!(
            spec,
            SchedulerSpec::Bohb {
                min_resource: 1,
                max_resource: 27,
                eta: 3,
                max_concurrent_brackets: 1,
            }
        );
        // Left at 1, the field is not written: the stored spec is unchanged.
        let written = serde_json::to_string(&spec).unwrap();
        assert!(!written.contains("max_concurrent_brackets"), "{written}");
        let sha: SchedulerSpec = serde_json::from_str(
            r#"{"type":"successive_halving","n_configs":9,"min_resource":1,"max_resource":9,
                "max_concurrent_brackets":3}"#,
        )
        .unwrap();
        assert!(matches!(
            sha,
            SchedulerSpec::SuccessiveHalving {
                max_concurrent_brackets: 3,
                ..
            }
        ));
        sha.validate().unwrap();
        for bad in [
            r#"{"type":"bohb","min_resource":1,"max_resource":27,"max_concurrent_brackets":0}"#,
            r#"{"type":"hyperband","min_resource":1,"max_resource":27,"max_concurrent_brackets":0}"#,
            r#"{"type":"successive_halving","n_configs":9,"min_resource":1,"max_resource":9,
                "max_concurrent_brackets":0}"#,
        ] {
            let spec: SchedulerSpec = serde_json::from_str(bad).unwrap();
            let message = spec.validate().unwrap_err().to_string();
            assert!(message.contains("max_concurrent_brackets"), "{message}");
        }
    }

    #[test]
    fn bad_settings_name_the_field() {
        let bad = SchedulerSpec::Pbt {
            population_size: 1,
            interval: 4,
            max_step: 40,
            config: PbtConfig::default(),
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("population_size"));
        let bad = SchedulerSpec::Pb2 {
            population_size: 4,
            interval: 50,
            max_step: 40,
            config: PbtConfig::default(),
            pb2: Pb2Config::default(),
        };
        assert!(bad.validate().unwrap_err().to_string().contains("interval"));
        let bad = SchedulerSpec::Asha {
            min_resource: 0,
            max_resource: 9,
            eta: 3,
        };
        assert!(bad.validate().is_err());
        assert!(serde_json::from_str::<SchedulerSpec>(r#"{"type":"asha","min":1}"#).is_err());
    }
}
