//! `--scheduler` and its options: a pause-and-resume scheduler from flags, a JSON spec, or
//! both (the flags override the spec's fields).
//!
//! ```text
//! --scheduler asha --min-resource 1 --max-resource 27 --eta 3
//! --scheduler sha --max-resource 9 --n-configs 9
//! --scheduler pbt --population 8 --interval 4 --max-step 40
//! --scheduler-json '{"type": "hyperband", "min_resource": 1, "max_resource": 81, "rounding": "floor_ratio"}'
//! ```
//!
//! The result is a [`SchedulerSpec`], stored with the study by the library (first writer
//! wins, like the sampler and the pruner). The checkpoint directory and how many checkpoints
//! to keep are stored too, but may be given again later: another path for the same shared
//! directory on this machine, another count for this run.

use anyhow::{bail, Context};
use ferrotune::schedule::SchedulerSpec;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// An example of `--scheduler-json`, for error messages.
const EXAMPLE: &str = r#"'{"type": "asha", "min_resource": 1, "max_resource": 27}'"#;

/// The schedulers `--scheduler` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SchedulerKind {
    /// No scheduler: trials run to their end unless the pruner stops them.
    #[value(name = "none")]
    Off,
    /// Asynchronous successive halving with promotion: trials pause at each rung; free
    /// workers promote the best of a rung or start new configurations.
    Asha,
    /// Synchronous successive halving: --n-configs configurations per bracket; the best 1/η
    /// of each rung go on once the whole rung has reported.
    #[value(alias = "successive_halving")]
    Sha,
    /// Synchronous Hyperband: its brackets one after another.
    Hyperband,
    /// Hyperband with BOHB's model as the sampler.
    Bohb,
    /// Population based training: --population members; every --interval steps the worst
    /// continue from the best's checkpoint with perturbed parameters.
    Pbt,
    /// PBT whose new parameters come from a GP bandit.
    Pb2,
}

impl SchedulerKind {
    /// The spec's `type` tag.
    fn tag(self) -> &'static str {
        match self {
            SchedulerKind::Off => "none",
            SchedulerKind::Asha => "asha",
            SchedulerKind::Sha => "successive_halving",
            SchedulerKind::Hyperband => "hyperband",
            SchedulerKind::Bohb => "bohb",
            SchedulerKind::Pbt => "pbt",
            SchedulerKind::Pb2 => "pb2",
        }
    }
}

/// The scheduler's options (stored with the study; see the module docs).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ScheduleOptions {
    /// Pause and resume trials with a scheduler (none by default; see "Pause and resume"
    /// below). Stored with the study; a scheduled study has no pruner.
    #[arg(long, value_enum)]
    pub scheduler: Option<SchedulerKind>,
    /// The whole scheduler as JSON, e.g. '{"type":"asha","min_resource":1,"max_resource":27}';
    /// scheduler flags given with it override its fields.
    #[arg(long, value_name = "JSON")]
    pub scheduler_json: Option<String>,
    /// asha, sha, hyperband, bohb: the first rung's step [default: 1].
    #[arg(long, value_name = "STEP")]
    pub min_resource: Option<u64>,
    /// The step at which a trial is complete: asha, sha, hyperband, bohb (also
    /// --max-step, pbt's name for it).
    #[arg(long, visible_alias = "max-step", value_name = "STEP")]
    pub max_resource: Option<u64>,
    /// asha, sha, hyperband, bohb: the reduction factor η, ≥ 2 [default: 3].
    #[arg(long)]
    pub eta: Option<u64>,
    /// sha: configurations per bracket [default: the most for which the bracket ends with
    /// one configuration at --max-resource, η^k].
    #[arg(long, value_name = "N")]
    pub n_configs: Option<u64>,
    /// pbt, pb2: members of the population, ≥ 2.
    #[arg(long, value_name = "N")]
    pub population: Option<usize>,
    /// pbt, pb2: steps between two exploit/explore decisions.
    #[arg(long, value_name = "STEPS")]
    pub interval: Option<u64>,
    /// Where the checkpoints of paused trials go, a directory every worker can reach
    /// [default: <--workdir, else the current directory>/ferrotune-checkpoints]. Stored with
    /// the study; given again later, it replaces the stored path for this run (the same
    /// shared directory mounted elsewhere).
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// How many checkpoints that no trial needs any more are kept, the newest [default: 10];
    /// checkpoints a paused trial may resume from are never deleted.
    #[arg(long, value_name = "N")]
    pub keep_checkpoints: Option<usize>,
}

/// Which options a scheduler type takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    /// `none`.
    Off,
    /// Successive halving and Hyperband: rungs of steps.
    Rungs,
    /// PBT and PB2.
    Population,
}

impl ScheduleOptions {
    /// The scheduler these flags describe; `None` when none of them is given.
    ///
    /// # Errors
    /// Invalid JSON, a flag the chosen scheduler does not take, a missing required value, or
    /// settings the scheduler refuses — each naming the flag to fix.
    pub fn spec(&self) -> anyhow::Result<Option<SchedulerSpec>> {
        let mut spec = match &self.scheduler_json {
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(m)) => m,
                Ok(other) => {
                    bail!("--scheduler-json must be a JSON object such as {EXAMPLE}, got {other}")
                }
                Err(e) => bail!(
                    "--scheduler-json is not valid JSON ({e}); write an object such as {EXAMPLE}"
                ),
            },
            None => Map::new(),
        };
        let json_type = match spec.get("type") {
            None => None,
            Some(Value::String(t)) => Some(canonical(t).to_owned()),
            Some(other) => bail!("--scheduler-json: \"type\" must be a string, got {other}"),
        };
        let tag = match (self.scheduler, json_type) {
            (Some(k), Some(t)) if t != k.tag() => bail!(
                "--scheduler {} and --scheduler-json's \"type\": \"{t}\" disagree; give one of them",
                flag_name(k.tag())
            ),
            (Some(k), _) => k.tag().to_owned(),
            (None, Some(t)) => t,
            (None, None) if self.scheduler_json.is_some() => bail!(
                "--scheduler-json needs a \"type\" (asha, successive_halving, hyperband, bohb, \
                 pbt, pb2, none), e.g. {EXAMPLE}"
            ),
            (None, None) => {
                if let Some(flag) = self.first_scheduler_flag() {
                    bail!(
                        "{flag} is an option of a scheduler: add --scheduler \
                         asha|sha|hyperband|bohb|pbt|pb2"
                    );
                }
                return Ok(None);
            }
        };
        spec.insert("type".into(), Value::from(tag.as_str()));
        let family = match tag.as_str() {
            "none" => Family::Off,
            "asha" | "successive_halving" | "hyperband" | "bohb" => Family::Rungs,
            "pbt" | "pb2" => Family::Population,
            other => bail!(
                "unknown scheduler type `{other}`; use asha, successive_halving (sha), \
                 hyperband, bohb, pbt, pb2 or none"
            ),
        };
        let name = flag_name(&tag);
        let max_key = if family == Family::Population {
            "max_step"
        } else {
            "max_resource"
        };
        let rungs = family == Family::Rungs;
        let population = family == Family::Population;
        let fields: [(&str, &str, Option<Value>, bool, &str); 6] = [
            (
                "--min-resource",
                "min_resource",
                self.min_resource.map(Value::from),
                rungs,
                "asha, sha, hyperband and bohb",
            ),
            (
                if population {
                    "--max-step"
                } else {
                    "--max-resource"
                },
                max_key,
                self.max_resource.map(Value::from),
                family != Family::Off,
                "every scheduler",
            ),
            (
                "--eta",
                "eta",
                self.eta.map(Value::from),
                rungs,
                "asha, sha, hyperband and bohb",
            ),
            (
                "--n-configs",
                "n_configs",
                self.n_configs.map(Value::from),
                tag == "successive_halving",
                "sha",
            ),
            (
                "--population",
                "population_size",
                self.population.map(Value::from),
                population,
                "pbt and pb2",
            ),
            (
                "--interval",
                "interval",
                self.interval.map(Value::from),
                population,
                "pbt and pb2",
            ),
        ];
        for (flag, key, value, applies, whose) in fields {
            let Some(value) = value else { continue };
            if !applies {
                bail!("{flag} is not an option of --scheduler {name}; it is one of {whose}");
            }
            spec.insert(key.into(), value);
        }
        match family {
            Family::Off => {}
            Family::Rungs => {
                spec.entry("min_resource").or_insert(Value::from(1u64));
                if !spec.contains_key("max_resource") {
                    bail!(
                        "--scheduler {name} needs --max-resource STEP: the step at which a trial \
                         is complete (the program trains up to it; FERROTUNE_MAX_STEP tells it)"
                    );
                }
                if tag == "successive_halving" && !spec.contains_key("n_configs") {
                    let n = natural_configs(&spec).with_context(|| {
                        format!("--scheduler sha: cannot derive --n-configs from {spec:?}")
                    })?;
                    spec.insert("n_configs".into(), Value::from(n));
                }
            }
            Family::Population => {
                let missing: Vec<&str> = [
                    ("population_size", "--population N (members, ≥ 2)"),
                    (
                        "interval",
                        "--interval STEPS (steps between exploit/explore decisions)",
                    ),
                    (
                        "max_step",
                        "--max-step STEP (the step at which a member is complete)",
                    ),
                ]
                .into_iter()
                .filter(|(key, _)| !spec.contains_key(*key))
                .map(|(_, flag)| flag)
                .collect();
                if !missing.is_empty() {
                    bail!("--scheduler {name} needs {}", missing.join(", "));
                }
            }
        }
        let text = Value::Object(spec.clone()).to_string();
        let spec: SchedulerSpec = serde_json::from_value(Value::Object(spec))
            .map_err(|e| anyhow::anyhow!("invalid scheduler {text}: {e}"))?;
        spec.validate().map_err(|e| {
            anyhow::anyhow!(
                "invalid scheduler {text}: {e} (flags: --min-resource, --max-resource or \
                 --max-step, --eta, --n-configs, --population, --interval)"
            )
        })?;
        Ok(Some(spec))
    }

    /// The first scheduler-specific flag given (not the checkpoint options).
    fn first_scheduler_flag(&self) -> Option<&'static str> {
        [
            ("--min-resource", self.min_resource.is_some()),
            ("--max-resource", self.max_resource.is_some()),
            ("--eta", self.eta.is_some()),
            ("--n-configs", self.n_configs.is_some()),
            ("--population", self.population.is_some()),
            ("--interval", self.interval.is_some()),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }
}

/// Accepts the short name `sha` in JSON too.
fn canonical(tag: &str) -> &str {
    match tag {
        "sha" => "successive_halving",
        other => other,
    }
}

/// How `--scheduler` writes a spec's type.
fn flag_name(tag: &str) -> &str {
    match tag {
        "successive_halving" => "sha",
        other => other,
    }
}

/// η^k for the largest k with `min_resource·η^k ≤ max_resource`: the bracket then ends with
/// exactly one configuration trained to `max_resource`.
fn natural_configs(spec: &Map<String, Value>) -> Option<u64> {
    let min = spec.get("min_resource")?.as_u64()?.max(1);
    let max = spec.get("max_resource")?.as_u64()?;
    let eta = spec.get("eta").map_or(Some(3), Value::as_u64)?;
    if eta < 2 {
        return None;
    }
    let (mut n, mut r) = (1u64, min);
    while let Some(next) = r.checked_mul(eta).filter(|&next| next <= max) {
        r = next;
        n = n.checked_mul(eta)?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(o: ScheduleOptions) -> anyhow::Result<Option<SchedulerSpec>> {
        o.spec()
    }

    fn err(o: ScheduleOptions) -> String {
        format!("{:#}", spec(o).expect_err("refused"))
    }

    #[test]
    fn no_flags_no_scheduler() {
        assert_eq!(spec(ScheduleOptions::default()).unwrap(), None);
        let o = ScheduleOptions {
            checkpoint_dir: Some("/tmp/c".into()),
            ..Default::default()
        };
        assert_eq!(
            spec(o).unwrap(),
            None,
            "checkpoint options are checked elsewhere"
        );
    }

    #[test]
    fn flags_build_specs_with_defaults() {
        let asha = spec(ScheduleOptions {
            scheduler: Some(SchedulerKind::Asha),
            max_resource: Some(27),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            asha,
            Some(SchedulerSpec::Asha {
                min_resource: 1,
                max_resource: 27,
                eta: 3
            })
        );
        let sha = spec(ScheduleOptions {
            scheduler: Some(SchedulerKind::Sha),
            max_resource: Some(9),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            sha,
            Some(SchedulerSpec::SuccessiveHalving {
                n_configs: 9,
                min_resource: 1,
                max_resource: 9,
                eta: 3,
                max_concurrent_brackets: 1,
            })
        );
        let pbt = spec(ScheduleOptions {
            scheduler: Some(SchedulerKind::Pbt),
            population: Some(4),
            interval: Some(2),
            max_resource: Some(8),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        assert!(
            matches!(
                pbt,
                SchedulerSpec::Pbt {
                    population_size: 4,
                    interval: 2,
                    max_step: 8,
                    ..
                }
            ),
            "{pbt:?}"
        );
        assert_eq!(
            spec(ScheduleOptions {
                scheduler: Some(SchedulerKind::Off),
                ..Default::default()
            })
            .unwrap(),
            Some(SchedulerSpec::None)
        );
    }

    #[test]
    fn json_and_flags_combine_and_flags_win() {
        let s = spec(ScheduleOptions {
            scheduler_json: Some(
                r#"{"type": "hyperband", "min_resource": 1, "max_resource": 81, "rounding": "floor_ratio"}"#
                    .into(),
            ),
            max_resource: Some(27),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        let text = serde_json::to_string(&s).unwrap();
        assert!(
            text.contains(r#""max_resource":27"#) && text.contains("floor_ratio"),
            "{text}"
        );
        let s = spec(ScheduleOptions {
            scheduler: Some(SchedulerKind::Sha),
            scheduler_json: Some(r#"{"type": "sha", "max_resource": 27, "eta": 3}"#.into()),
            ..Default::default()
        })
        .unwrap();
        assert!(
            matches!(
                s,
                Some(SchedulerSpec::SuccessiveHalving { n_configs: 27, .. })
            ),
            "{s:?}"
        );
    }

    #[test]
    fn mistakes_name_the_flag() {
        let e = err(ScheduleOptions {
            min_resource: Some(1),
            ..Default::default()
        });
        assert!(
            e.contains("--min-resource") && e.contains("--scheduler"),
            "{e}"
        );
        let e = err(ScheduleOptions {
            scheduler: Some(SchedulerKind::Asha),
            ..Default::default()
        });
        assert!(e.contains("needs --max-resource"), "{e}");
        let e = err(ScheduleOptions {
            scheduler: Some(SchedulerKind::Pbt),
            max_resource: Some(10),
            ..Default::default()
        });
        assert!(
            e.contains("--population") && e.contains("--interval") && !e.contains("--max-step"),
            "{e}"
        );
        let e = err(ScheduleOptions {
            scheduler: Some(SchedulerKind::Asha),
            max_resource: Some(9),
            population: Some(4),
            ..Default::default()
        });
        assert!(
            e.contains("--population is not an option of --scheduler asha"),
            "{e}"
        );
        let e = err(ScheduleOptions {
            scheduler: Some(SchedulerKind::Asha),
            scheduler_json: Some(r#"{"type": "pbt"}"#.into()),
            ..Default::default()
        });
        assert!(e.contains("disagree"), "{e}");
        let e = err(ScheduleOptions {
            scheduler_json: Some("{oops".into()),
            ..Default::default()
        });
        assert!(e.contains("not valid JSON"), "{e}");
        let e = err(ScheduleOptions {
            scheduler: Some(SchedulerKind::Asha),
            max_resource: Some(9),
            eta: Some(1),
            ..Default::default()
        });
        assert!(e.contains("eta") && e.contains("--eta"), "{e}");
        let e = err(ScheduleOptions {
            scheduler_json: Some(r#"{"type": "asha", "max_resource": 9, "typo": 1}"#.into()),
            ..Default::default()
        });
        assert!(e.contains("typo"), "{e}");
    }

    #[test]
    fn natural_bracket_sizes() {
        let m = |min: u64, max: u64, eta: u64| {
            let mut s = Map::new();
            s.insert("min_resource".into(), min.into());
            s.insert("max_resource".into(), max.into());
            s.insert("eta".into(), eta.into());
            natural_configs(&s)
        };
        assert_eq!(m(1, 9, 3), Some(9));
        assert_eq!(m(1, 27, 3), Some(27));
        assert_eq!(m(1, 10, 3), Some(9));
        assert_eq!(m(3, 9, 3), Some(3));
        assert_eq!(m(9, 9, 3), Some(1));
        assert_eq!(m(1, 16, 2), Some(16));
    }
}
