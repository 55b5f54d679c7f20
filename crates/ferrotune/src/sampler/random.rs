//! `RandomSampler`: independent uniform sampling (log-uniform on log scales, uniform over grid
//! points for stepped ranges, integers and categoricals).

use super::Sampler;
use crate::error::Result;
use crate::rng::TrialRng;
use crate::space::Distribution;
use crate::study::StudyView;
use crate::trial::FrozenTrial;

/// Random search: every parameter drawn independently from its distribution. It reads no
/// history, so its cost per trial is constant however large the study grows.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomSampler;

impl RandomSampler {
    /// A random sampler; its stream comes from the study seed.
    pub fn new() -> Self {
        RandomSampler
    }
}

impl Sampler for RandomSampler {
    fn sample_independent(
        &self,
        _study: &StudyView<'_>,
        _trial: &FrozenTrial,
        _name: &str,
        distribution: &Distribution,
        rng: &mut TrialRng,
    ) -> Result<f64> {
        Ok(distribution.from_unit(rng.uniform()))
    }
}

#[cfg(test)]
mod tests {
    use crate::sampler::conformance;

    #[test]
    fn passes_the_sampler_suite() {
        conformance::run_all(|| crate::sampler::SamplerSpec::Random);
    }
}
