//! `SamplerSpec`: a sampler as data, so a study stores the sampler it was created with and a
//! worker on another machine rebuilds exactly that sampler.

use super::{GridSampler, PartialFixedSampler, QmcKind, QmcSampler, RandomSampler, Sampler};
use crate::error::{Error, Result};
use crate::space::ParamValue;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The serializable description of a sampler. Specs carry no seed: every random stream comes
/// from the study seed.
///
/// JSON form: `{"type": "random"}`, `{"type": "grid", "grid": {"lr": [0.1, 0.01]}}`,
/// `{"type": "qmc", "kind": "sobol"}`,
/// `{"type": "partial_fixed", "fixed": {"lr": 0.1}, "base": {"type": "random"}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum SamplerSpec {
    /// [`RandomSampler`].
    #[default]
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

impl SamplerSpec {
    /// Builds the sampler. A `Custom` spec cannot be built from data alone.
    pub fn build(&self) -> Result<Arc<dyn Sampler>> {
        Ok(match self {
            SamplerSpec::Random => Arc::new(RandomSampler),
            SamplerSpec::Grid { grid } => Arc::new(GridSampler::new(grid.clone())?),
            SamplerSpec::Qmc { kind, scramble } => Arc::new(QmcSampler::new(*kind, *scramble)),
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

    /// The short name used by the CLI (`random`, `grid`, `qmc`, …).
    pub fn name(&self) -> &str {
        match self {
            SamplerSpec::Random => "random",
            SamplerSpec::Grid { .. } => "grid",
            SamplerSpec::Qmc { .. } => "qmc",
            SamplerSpec::PartialFixed { .. } => "partial_fixed",
            SamplerSpec::Custom { name } => name,
        }
    }
}
