//! `QmcSampler`: quasi-random (low-discrepancy) points, which cover a space more evenly than
//! independent random draws for the same budget.

use super::{varying_params, RandomSampler, Sampler, SearchSpace};
use crate::error::{Error, Result};
use crate::rng::TrialRng;
use crate::space::Distribution;
use crate::study::StudyView;
use crate::trial::{FrozenTrial, TrialState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Study attribute holding the space the QMC sequence covers, first writer wins.
const SPACE_ATTR: &str = "qmc:search_space";

/// Which low-discrepancy sequence to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum QmcKind {
    /// Owen-scrambled Sobol (Burley 2020, "Practical Hash-based Owen Scrambling"), up to 256
    /// dimensions; always scrambled, seeded by the study seed.
    #[default]
    Sobol,
    /// Halton: radical inverses in the first primes, with seeded random digit permutations
    /// when scrambled (Braaten & Weller 1979 style).
    Halton,
}

/// Quasi-Monte Carlo sampling.
///
/// The space is that of the lowest-numbered finished trial, fixed for the study on first use
/// (a first-writer-wins study attribute, so every worker agrees); until a trial has finished,
/// and for parameters outside that space (conditional ones), values are drawn at random. The
/// sequence index is the trial number, which storage hands out atomically, so parallel workers
/// never draw the same point and need no shared counter.
#[derive(Debug)]
pub struct QmcSampler {
    kind: QmcKind,
    scramble: bool,
    /// The study's space once known (it never changes afterwards).
    space: Mutex<Option<SearchSpace>>,
}

impl QmcSampler {
    /// A QMC sampler. Sobol is always scrambled; `scramble` applies to Halton.
    pub fn new(kind: QmcKind, scramble: bool) -> Self {
        QmcSampler {
            kind,
            scramble,
            space: Mutex::new(None),
        }
    }

    fn known_space(&self, study: &StudyView<'_>) -> Result<Option<SearchSpace>> {
        if let Some(space) = self.space.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(Some(space));
        }
        let storage = study.storage();
        let stored = match storage.study_system_attr(study.study_id(), SPACE_ATTR)? {
            Some(v) => v,
            None => {
                let Some(first) = study
                    .trials()?
                    .iter()
                    .find(|t| t.state.is_finished() && t.state != TrialState::Fail)
                else {
                    return Ok(None);
                };
                let space: SearchSpace = varying_params(first);
                storage.set_study_system_attr_if_absent(
                    study.study_id(),
                    SPACE_ATTR,
                    &serde_json::to_value(&space)?,
                )?
            }
        };
        let space: SearchSpace = serde_json::from_value(stored)?;
        *self.space.lock().unwrap_or_else(|e| e.into_inner()) = Some(space.clone());
        Ok(Some(space))
    }

    /// Coordinate `dim` of point `index`, in `[0, 1)`.
    fn coordinate(&self, index: u64, dim: usize, seed: u64) -> f64 {
        match self.kind {
            QmcKind::Sobol => {
                let folded = (seed ^ (seed >> 32)) as u32;
                f64::from(sobol_burley::sample(index as u32, dim as u32, folded))
            }
            QmcKind::Halton => halton(index + 1, dim, self.scramble.then_some(seed)),
        }
    }
}

/// The first primes, one Halton base per dimension.
fn nth_prime(n: usize) -> u64 {
    let mut count = 0;
    let mut candidate = 1u64;
    while count <= n {
        candidate += 1;
        if (2..)
            .take_while(|d| d * d <= candidate)
            .all(|d| !candidate.is_multiple_of(d))
        {
            count += 1;
        }
    }
    candidate
}

/// The radical inverse of `index` in the `dim`-th prime base, with each digit passed through a
/// seeded permutation (fixing 0 so trailing zeros stay zero) when `seed` is given.
fn halton(index: u64, dim: usize, seed: Option<u64>) -> f64 {
    let base = nth_prime(dim);
    let perm: Vec<u64> = match seed {
        Some(seed) => {
            let mut rng = TrialRng::from_seed(seed ^ (dim as u64).wrapping_mul(0x9E37_79B9));
            let mut p: Vec<u64> = (0..base).collect();
            for i in (2..base as usize).rev() {
                let j = 1 + rng.below(i as u64) as usize;
                p.swap(i, j);
            }
            p
        }
        None => (0..base).collect(),
    };
    let (mut i, mut f, mut r) = (index, 1.0, 0.0);
    while i > 0 {
        f /= base as f64;
        r += f * perm[(i % base) as usize] as f64;
        i /= base;
    }
    r
}

impl Sampler for QmcSampler {
    fn infer_relative_search_space(
        &self,
        study: &StudyView<'_>,
        _trial: &FrozenTrial,
    ) -> Result<SearchSpace> {
        let space = self.known_space(study)?.unwrap_or_default();
        if self.kind == QmcKind::Sobol && space.len() > sobol_burley::NUM_DIMENSIONS as usize {
            return Err(Error::invalid_argument(
                "qmc",
                format!(
                    "Sobol supports {} dimensions, the space has {}; use Halton",
                    sobol_burley::NUM_DIMENSIONS,
                    space.len()
                ),
            ));
        }
        Ok(space)
    }

    fn sample_relative(
        &self,
        study: &StudyView<'_>,
        trial: &FrozenTrial,
        space: &SearchSpace,
        _rng: &mut TrialRng,
    ) -> Result<BTreeMap<String, f64>> {
        Ok(space
            .iter()
            .enumerate()
            .map(|(dim, (name, dist))| {
                let u = self.coordinate(trial.number, dim, study.seed());
                (name.clone(), dist.from_unit(u))
            })
            .collect())
    }

    fn sample_independent(
        &self,
        study: &StudyView<'_>,
        trial: &FrozenTrial,
        name: &str,
        distribution: &Distribution,
        rng: &mut TrialRng,
    ) -> Result<f64> {
        RandomSampler.sample_independent(study, trial, name, distribution, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_sampler_suite() {
        for kind in [QmcKind::Sobol, QmcKind::Halton] {
            crate::sampler::conformance::run_all(|| crate::SamplerSpec::Qmc {
                kind,
                scramble: true,
            });
        }
    }

    /// Over a whole study, QMC covers the unit square more evenly than random search.
    #[test]
    fn covers_the_space_more_evenly_than_random() {
        use crate::{Optimize, Study, Trial, TrialError};
        let empty_cells = |spec: crate::SamplerSpec| {
            let study = Study::builder().sampler(spec).seed(3).build().unwrap();
            let objective = |t: &mut Trial| -> Result<f64, TrialError> {
                Ok(t.suggest_float("x", 0.0, 1.0)? + t.suggest_float("y", 0.0, 1.0)?)
            };
            study.optimize(objective, Optimize::trials(257)).unwrap();
            let mut cells = [[0u32; 16]; 16];
            for t in study.trials().unwrap().iter().skip(1) {
                let x = t.params["x"].as_f64().unwrap();
                let y = t.params["y"].as_f64().unwrap();
                cells[(x * 16.0) as usize][(y * 16.0) as usize] += 1;
            }
            cells.iter().flatten().filter(|&&c| c == 0).count()
        };
        let qmc = empty_cells(crate::SamplerSpec::Qmc {
            kind: QmcKind::Sobol,
            scramble: true,
        });
        let random = empty_cells(crate::SamplerSpec::Random);
        // 256 uniform points leave about 256/e ≈ 94 of 256 cells empty.
        assert!(
            qmc < 40 && random > 60,
            "qmc {qmc} vs random {random} empty cells"
        );
    }

    #[test]
    fn primes() {
        let p: Vec<u64> = (0..6).map(nth_prime).collect();
        assert_eq!(p, vec![2, 3, 5, 7, 11, 13]);
    }

    #[test]
    fn halton_base_two_is_van_der_corput() {
        let xs: Vec<f64> = (1..=4).map(|i| halton(i, 0, None)).collect();
        let want = [0.5, 0.25, 0.75, 0.125];
        for (x, w) in xs.iter().zip(want) {
            assert!((x - w).abs() < 1e-12);
        }
    }

    /// Low discrepancy: the first b^k points of a (scrambled) sequence put exactly one
    /// point in each of b^k equal cells of every coordinate (Sobol: b = 2; Halton: the
    /// dimension's prime), where independent draws leave about a third of them empty.
    #[test]
    fn sequences_stratify() {
        for (kind, dim, cells) in [
            (QmcKind::Sobol, 0, 64),
            (QmcKind::Sobol, 1, 64),
            (QmcKind::Sobol, 2, 64),
            (QmcKind::Halton, 0, 64),
            (QmcKind::Halton, 1, 81),
            (QmcKind::Halton, 2, 125),
        ] {
            let s = QmcSampler::new(kind, true);
            let mut counts = vec![0u32; cells];
            for i in 0..cells as u64 {
                let u = s.coordinate(i, dim, 9);
                assert!((0.0..1.0).contains(&u));
                // Points sit on cell boundaries k/b^k, which 1/3-style sums miss by an ulp.
                counts[((u * cells as f64) + 1e-9) as usize] += 1;
            }
            assert!(
                counts.iter().all(|&c| c == 1),
                "{kind:?} dim {dim}: {counts:?}"
            );
        }
    }
}
