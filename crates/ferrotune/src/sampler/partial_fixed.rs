//! `PartialFixedSampler`: some parameters fixed, the rest from another sampler.

use super::{Sampler, SearchSpace};
use crate::error::{Error, Result};
use crate::rng::TrialRng;
use crate::space::{Distribution, ParamValue};
use crate::study::StudyView;
use crate::trial::{FrozenTrial, TrialState};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Fixes some parameters to given values and delegates the others to a base sampler (to
/// explore around a known configuration, or to freeze a parameter mid-study).
#[derive(Debug, Clone)]
pub struct PartialFixedSampler {
    fixed: BTreeMap<String, ParamValue>,
    base: Arc<dyn Sampler>,
}

impl PartialFixedSampler {
    /// Fixes `fixed` and samples everything else with `base`.
    pub fn new(fixed: BTreeMap<String, ParamValue>, base: Arc<dyn Sampler>) -> Self {
        PartialFixedSampler { fixed, base }
    }
}

impl Sampler for PartialFixedSampler {
    fn sample_independent(
        &self,
        study: &StudyView<'_>,
        trial: &FrozenTrial,
        name: &str,
        distribution: &Distribution,
        rng: &mut TrialRng,
    ) -> Result<f64> {
        match self.fixed.get(name) {
            Some(value) => distribution.to_internal(value).map_err(|_| {
                Error::invalid_argument(
                    "fixed_params",
                    format!(
                        "fixed value {value} of `{name}` is outside the suggested {distribution}"
                    ),
                )
            }),
            None => self
                .base
                .sample_independent(study, trial, name, distribution, rng),
        }
    }

    fn infer_relative_search_space(
        &self,
        study: &StudyView<'_>,
        trial: &FrozenTrial,
    ) -> Result<SearchSpace> {
        let mut space = self.base.infer_relative_search_space(study, trial)?;
        space.retain(|name, _| !self.fixed.contains_key(name));
        Ok(space)
    }

    fn sample_relative(
        &self,
        study: &StudyView<'_>,
        trial: &FrozenTrial,
        space: &SearchSpace,
        rng: &mut TrialRng,
    ) -> Result<BTreeMap<String, f64>> {
        self.base.sample_relative(study, trial, space, rng)
    }

    fn exhausted(&self, study: &StudyView<'_>) -> Result<bool> {
        self.base.exhausted(study)
    }

    fn before_trial(&self, study: &StudyView<'_>, trial: &FrozenTrial) -> Result<bool> {
        self.base.before_trial(study, trial)
    }

    fn after_trial(
        &self,
        study: &StudyView<'_>,
        trial: &FrozenTrial,
        state: TrialState,
        values: Option<&[f64]>,
    ) -> Result<()> {
        self.base.after_trial(study, trial, state, values)
    }
}

#[cfg(test)]
mod tests {
    use crate::sampler::conformance;
    use crate::{ParamValue, SamplerSpec};
    use std::collections::BTreeMap;

    #[test]
    fn passes_the_sampler_suite_and_fixes_its_parameters() {
        let mut fixed = BTreeMap::new();
        fixed.insert("k".to_owned(), ParamValue::Int(4));
        let spec = SamplerSpec::PartialFixed {
            fixed,
            base: Box::new(SamplerSpec::Random),
        };
        conformance::run_all(|| spec.clone());
        let study = crate::Study::builder()
            .sampler(spec)
            .seed(1)
            .build()
            .unwrap();
        study
            .optimize(conformance::suite_objective, crate::Optimize::trials(20))
            .unwrap();
        for t in study.trials().unwrap() {
            assert_eq!(t.params["k"], ParamValue::Int(4));
        }
    }
}
