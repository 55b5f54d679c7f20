//! `SamplerSpec`: a sampler as data, so a study stores the sampler it was created with and a
//! worker on another machine rebuilds exactly that sampler.

use super::{
    BohbConfig, BohbSampler, GridSampler, PartialFixedSampler, QmcKind, QmcSampler, RandomSampler,
    Sampler, TpeConfig, TpeSampler,
};
use crate::error::{Error, Result};
use crate::space::ParamValue;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The serializable description of a sampler. Specs carry no seed: every random stream comes
/// from the study seed.
///
/// JSON form: `{"type": "random"}`, `{"type": "grid", "grid": {"lr": [0.1, 0.01]}}`,
/// `{"type": "qmc", "kind": "sobol"}`, `{"type": "tpe"}` (Optuna 5.0 defaults),
/// `{"type": "tpe", "multivariate": false, "n_startup_trials": 20}`,
/// `{"type": "partial_fixed", "fixed": {"lr": 0.1}, "base": {"type": "random"}}`,
/// `{"type": "bohb"}` (HpBandSter's defaults), `{"type": "bohb", "random_fraction": 0.2}`.
///
/// The default is TPE with Optuna 5.0's settings, as in Optuna: it beats random search on
/// nearly every problem after its ten random startup trials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum SamplerSpec {
    /// [`RandomSampler`].
    Random,
    /// [`GridSampler`] over a list of values per parameter.
    Grid {
        /// Values per parameter.
        grid: BTreeMap<String, Vec<ParamValue>>,
    },
    /// [`QmcSampler`].
    Qmc {
        /// Sobol or Halton.
        #[serde(default)]
        kind: QmcKind,
        /// Scramble the sequence (Halton; Sobol is always scrambled).
        #[serde(default = "yes")]
        scramble: bool,
    },
    /// [`TpeSampler`]; every field defaults to Optuna 5.0's value (see [`TpeConfig`]).
    Tpe {
        /// Random trials before the model is used.
        #[serde(default = "tpe_n_startup")]
        n_startup_trials: usize,
        /// Candidates drawn from `l(x)` per proposal.
        #[serde(default = "tpe_n_ei")]
        n_ei_candidates: usize,
        /// Model shared parameters jointly.
        #[serde(default = "yes")]
        multivariate: bool,
        /// Count Running trials as bad ones.
        #[serde(default = "yes")]
        constant_liar: bool,
        /// Weight of the prior component.
        #[serde(default = "one")]
        prior_weight: f64,
        /// Let range ends bound the extreme kernels' widths.
        #[serde(default)]
        consider_endpoints: bool,
        /// Clip kernel widths.
        #[serde(default = "yes")]
        consider_magic_clip: bool,
        /// Model each group of parameters that always occur together jointly (conditional
        /// spaces; needs `multivariate`).
        #[serde(default)]
        group: bool,
        /// Model Pruned trials too, ranked after the Complete ones (Optuna's rule).
        #[serde(default = "yes")]
        consider_pruned_trials: bool,
    },
    /// [`BohbSampler`]; every field defaults to HpBandSter's value (see [`BohbConfig`]).
    Bohb {
        /// Percentage of the observations at the model's budget that are good.
        #[serde(default = "bohb_top_n_percent")]
        top_n_percent: u32,
        /// Probability of a uniformly random proposal.
        #[serde(default = "bohb_random_fraction")]
        random_fraction: f64,
        /// Widening of the good model's bandwidths when drawing candidates.
        #[serde(default = "bohb_bandwidth_factor")]
        bandwidth_factor: f64,
        /// Smallest kernel bandwidth.
        #[serde(default = "bohb_min_bandwidth")]
        min_bandwidth: f64,
        /// Candidates per proposal.
        #[serde(default = "bohb_num_samples")]
        num_samples: usize,
        /// Observations each group needs at the least; `null` for the number of modelled
        /// parameters plus one.
        #[serde(default)]
        min_points_in_model: Option<usize>,
    },
    /// [`PartialFixedSampler`].
    PartialFixed {
        /// The fixed values.
        fixed: BTreeMap<String, ParamValue>,
        /// The sampler for everything else.
        base: Box<SamplerSpec>,
    },
    /// A sampler defined outside ferrotune and passed to the study builder as an object; the
    /// name is stored so that reopening the study with another sampler is caught.
    Custom {
        /// The custom sampler's name.
        name: String,
    },
}

fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}
fn tpe_n_startup() -> usize {
    TpeConfig::default().n_startup_trials
}
fn tpe_n_ei() -> usize {
    TpeConfig::default().n_ei_candidates
}
fn bohb_top_n_percent() -> u32 {
    BohbConfig::default().top_n_percent
}
fn bohb_random_fraction() -> f64 {
    BohbConfig::default().random_fraction
}
fn bohb_bandwidth_factor() -> f64 {
    BohbConfig::default().bandwidth_factor
}
fn bohb_min_bandwidth() -> f64 {
    BohbConfig::default().min_bandwidth
}
fn bohb_num_samples() -> usize {
    BohbConfig::default().num_samples
}

impl Default for SamplerSpec {
    fn default() -> Self {
        SamplerSpec::tpe(TpeConfig::default())
    }
}

impl SamplerSpec {
    /// Builds the sampler. A `Custom` spec cannot be built from data alone.
    pub fn build(&self) -> Result<Arc<dyn Sampler>> {
        Ok(match self {
            SamplerSpec::Random => Arc::new(RandomSampler),
            SamplerSpec::Grid { grid } => Arc::new(GridSampler::new(grid.clone())?),
            SamplerSpec::Qmc { kind, scramble } => Arc::new(QmcSampler::new(*kind, *scramble)),
            SamplerSpec::Tpe {
                n_startup_trials,
                n_ei_candidates,
                multivariate,
                constant_liar,
                prior_weight,
                consider_endpoints,
                consider_magic_clip,
                group,
                consider_pruned_trials,
            } => Arc::new(TpeSampler::new(TpeConfig {
                n_startup_trials: *n_startup_trials,
                n_ei_candidates: *n_ei_candidates,
                multivariate: *multivariate,
                constant_liar: *constant_liar,
                prior_weight: *prior_weight,
                consider_endpoints: *consider_endpoints,
                consider_magic_clip: *consider_magic_clip,
                group: *group,
                consider_pruned_trials: *consider_pruned_trials,
            })?),
            SamplerSpec::Bohb {
                top_n_percent,
                random_fraction,
                bandwidth_factor,
                min_bandwidth,
                num_samples,
                min_points_in_model,
            } => Arc::new(BohbSampler::new(BohbConfig {
                top_n_percent: *top_n_percent,
                random_fraction: *random_fraction,
                bandwidth_factor: *bandwidth_factor,
                min_bandwidth: *min_bandwidth,
                num_samples: *num_samples,
                min_points_in_model: *min_points_in_model,
            })?),
            SamplerSpec::PartialFixed { fixed, base } => {
                Arc::new(PartialFixedSampler::new(fixed.clone(), base.build()?))
            }
            SamplerSpec::Custom { name } => {
                return Err(Error::invalid_argument(
                    "sampler",
                    format!(
                        "the study uses the custom sampler `{name}`, which cannot be rebuilt from \
                         its stored spec; pass it with StudyBuilder::custom_sampler"
                    ),
                ))
            }
        })
    }

    /// TPE with the given settings.
    pub fn tpe(config: TpeConfig) -> SamplerSpec {
        SamplerSpec::Tpe {
            n_startup_trials: config.n_startup_trials,
            n_ei_candidates: config.n_ei_candidates,
            multivariate: config.multivariate,
            constant_liar: config.constant_liar,
            prior_weight: config.prior_weight,
            consider_endpoints: config.consider_endpoints,
            consider_magic_clip: config.consider_magic_clip,
            group: config.group,
            consider_pruned_trials: config.consider_pruned_trials,
        }
    }

    /// BOHB with the given settings.
    pub fn bohb(config: BohbConfig) -> SamplerSpec {
        SamplerSpec::Bohb {
            top_n_percent: config.top_n_percent,
            random_fraction: config.random_fraction,
            bandwidth_factor: config.bandwidth_factor,
            min_bandwidth: config.min_bandwidth,
            num_samples: config.num_samples,
            min_points_in_model: config.min_points_in_model,
        }
    }

    /// The short name used by the CLI (`random`, `grid`, `qmc`, …).
    pub fn name(&self) -> &str {
        match self {
            SamplerSpec::Random => "random",
            SamplerSpec::Grid { .. } => "grid",
            SamplerSpec::Qmc { .. } => "qmc",
            SamplerSpec::Tpe { .. } => "tpe",
            SamplerSpec::Bohb { .. } => "bohb",
            SamplerSpec::PartialFixed { .. } => "partial_fixed",
            SamplerSpec::Custom { name } => name,
        }
    }
}
