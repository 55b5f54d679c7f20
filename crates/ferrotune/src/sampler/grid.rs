//! `GridSampler`: every combination of the given values, each handed out exactly once.

use super::Sampler;
use crate::error::{Error, Result};
use crate::rng::TrialRng;
use crate::space::{Distribution, ParamValue};
use crate::storage::StudyId;
use crate::study::StudyView;
use crate::trial::{FrozenTrial, TrialState};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Trial system attribute holding the trial's grid point index.
const GRID_ID_ATTR: &str = "grid_id";

/// Grid search over the Cartesian product of a list of values per parameter.
///
/// Points are visited in an order shuffled by the study seed. Each point is claimed by one
/// trial through a first-writer-wins study attribute, so no point is handed out twice, even by
/// parallel threads or processes sharing one storage. When every point has been handed out the
/// study stops; a trial that finds the grid already used up fails with that reason and stops
/// the study (this can only happen to a trial started in parallel with the last one).
#[derive(Debug)]
pub struct GridSampler {
    names: Vec<String>,
    values: Vec<Vec<ParamValue>>,
    n_points: u64,
    /// Per study: every slot below this one is known to be claimed.
    claimed_below: Mutex<HashMap<StudyId, u64>>,
}

impl Clone for GridSampler {
    fn clone(&self) -> Self {
        GridSampler {
            names: self.names.clone(),
            values: self.values.clone(),
            n_points: self.n_points,
            claimed_below: Mutex::default(),
        }
    }
}

impl GridSampler {
    /// A grid from a list of values per parameter. Every list must be non-empty.
    pub fn new(grid: BTreeMap<String, Vec<ParamValue>>) -> Result<Self> {
        if grid.is_empty() {
            return Err(Error::invalid_argument(
                "grid",
                "the grid has no parameters; give at least one parameter with its values",
            ));
        }
        let mut n_points: u64 = 1;
        for (name, values) in &grid {
            if values.is_empty() {
                return Err(Error::invalid_argument(
                    "grid",
                    format!("parameter `{name}` has no values; give at least one"),
                ));
            }
            n_points = n_points.checked_mul(values.len() as u64).ok_or_else(|| {
                Error::invalid_argument("grid", "the grid has more than 2^64 points")
            })?;
        }
        let (names, values) = grid.into_iter().unzip();
        Ok(GridSampler {
            names,
            values,
            n_points,
            claimed_below: Mutex::default(),
        })
    }

    /// The number of grid points.
    pub fn len(&self) -> u64 {
        self.n_points
    }

    /// Whether the grid is empty (never: construction requires a value per parameter).
    pub fn is_empty(&self) -> bool {
        self.n_points == 0
    }

    /// The value of parameter `param` at point `point` (mixed-radix decoding, names sorted).
    fn value_at(&self, point: u64, param: usize) -> &ParamValue {
        let mut rest = point;
        for (i, values) in self.values.iter().enumerate().rev() {
            let n = values.len() as u64;
            if i == param {
                return &values[(rest % n) as usize];
            }
            rest /= n;
        }
        unreachable!("param index is within names")
    }

    /// The seeded visiting order: the k-th point visited is `(a·k + b) mod n` with `a` coprime
    /// to `n`, a bijection of `0..n` that needs no stored permutation.
    fn shuffled(&self, k: u64, seed: u64) -> u64 {
        let n = self.n_points;
        if n <= 1 {
            return 0;
        }
        let mut rng = TrialRng::from_seed(seed ^ 0x6772_6964);
        let mut a = rng.below(n).max(1);
        while gcd(a, n) != 1 {
            a = (a + 1) % n;
            a = a.max(1);
        }
        let b = rng.below(n);
        ((u128::from(a) * u128::from(k) + u128::from(b)) % u128::from(n)) as u64
    }

    /// Claims a free grid point for trial `number`, or `None` when all are taken.
    fn claim(&self, study: &StudyView<'_>, number: u64) -> Result<Option<u64>> {
        let n = self.n_points;
        let me = Value::from(number);
        // Trial numbers are dense, so starting at the trial's own number usually wins the
        // first probe; collisions with parallel workers move on to the next slot.
        for offset in 0..n {
            let slot = (number + offset) % n;
            let key = claim_key(slot);
            let winner =
                study
                    .storage()
                    .set_study_system_attr_if_absent(study.study_id(), &key, &me)?;
            if winner == me {
                return Ok(Some(self.shuffled(slot, study.seed())));
            }
        }
        Ok(None)
    }
}

/// The study attribute that records which trial claimed grid slot `slot`.
fn claim_key(slot: u64) -> String {
    format!("grid:claim:{slot}")
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Sampler for GridSampler {
    fn exhausted(&self, study: &StudyView<'_>) -> Result<bool> {
        // Claims are never released, so the slots below the last known unclaimed one stay
        // claimed: each check resumes there, and a whole study costs O(points) lookups.
        let mut known = self.claimed_below.lock().unwrap_or_else(|e| e.into_inner());
        let below = known.entry(study.study_id()).or_insert(0);
        while *below < self.n_points {
            let key = claim_key(*below);
            if study
                .storage()
                .study_system_attr(study.study_id(), &key)?
                .is_none()
            {
                break;
            }
            *below += 1;
        }
        Ok(*below >= self.n_points)
    }

    fn before_trial(&self, study: &StudyView<'_>, trial: &FrozenTrial) -> Result<bool> {
        if trial.system_attrs.contains_key(GRID_ID_ATTR) {
            return Ok(false);
        }
        match self.claim(study, trial.number)? {
            Some(point) => {
                study.storage().set_trial_system_attr(
                    trial.id,
                    GRID_ID_ATTR,
                    &Value::from(point),
                )?;
                Ok(true)
            }
            None => {
                study.stop("grid exhausted");
                Err(Error::Stopped(format!(
                    "all {} grid points have been handed out",
                    self.n_points
                )))
            }
        }
    }

    fn sample_independent(
        &self,
        _study: &StudyView<'_>,
        trial: &FrozenTrial,
        name: &str,
        distribution: &Distribution,
        _rng: &mut TrialRng,
    ) -> Result<f64> {
        let param = self.names.iter().position(|n| n == name).ok_or_else(|| {
            Error::invalid_argument(
                "grid",
                format!(
                    "parameter `{name}` is not in the grid ({}); add it to the grid",
                    self.names.join(", ")
                ),
            )
        })?;
        let point = trial
            .system_attrs
            .get(GRID_ID_ATTR)
            .and_then(Value::as_u64)
            .ok_or_else(|| Error::Storage(format!("trial #{} has no grid point", trial.number)))?;
        let value = self.value_at(point, param);
        distribution.to_internal(value).map_err(|_| {
            Error::invalid_argument(
                "grid",
                format!("grid value {value} of `{name}` is outside the suggested {distribution}"),
            )
        })
    }

    fn after_trial(
        &self,
        study: &StudyView<'_>,
        _trial: &FrozenTrial,
        _state: TrialState,
        _values: Option<&[f64]>,
    ) -> Result<()> {
        if self.exhausted(study)? {
            study.stop("grid exhausted");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> GridSampler {
        let mut g = BTreeMap::new();
        g.insert("a".to_owned(), vec![ParamValue::Int(1), ParamValue::Int(2)]);
        g.insert("b".to_owned(), vec!["x".into(), "y".into(), "z".into()]);
        GridSampler::new(g).unwrap()
    }

    #[test]
    fn decoding_covers_the_product() {
        let g = grid();
        let mut seen = std::collections::BTreeSet::new();
        for p in 0..g.len() {
            seen.insert((g.value_at(p, 0).to_string(), g.value_at(p, 1).to_string()));
        }
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut g = grid();
        for n in [1u64, 6, 7, 12, 97] {
            g.n_points = n;
            let mut seen: Vec<u64> = (0..n).map(|k| g.shuffled(k, 42)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn passes_the_sampler_suite() {
        crate::sampler::conformance::run_all(|| crate::sampler::SamplerSpec::Grid {
            grid: crate::sampler::conformance::suite_grid(),
        });
    }

    #[test]
    fn every_point_once_then_the_study_stops() {
        use crate::{Optimize, Study, Trial, TrialError};
        let mut g = BTreeMap::new();
        g.insert("a".to_owned(), (0..4).map(ParamValue::Int).collect());
        g.insert("b".to_owned(), (0..5).map(ParamValue::Int).collect());
        let study = Study::builder()
            .sampler(crate::SamplerSpec::Grid { grid: g })
            .seed(5)
            .build()
            .unwrap();
        let objective = |t: &mut Trial| -> Result<f64, TrialError> {
            std::thread::sleep(std::time::Duration::from_millis(1));
            Ok((t.suggest_int("a", 0, 3)? * 10 + t.suggest_int("b", 0, 4)?) as f64)
        };
        // Four threads and room for 100 trials: the grid's 20 points end the study.
        study
            .optimize(objective, Optimize::trials(100).jobs(4))
            .unwrap();
        let complete = study.trials_in(&[TrialState::Complete]).unwrap();
        let mut values: Vec<i64> = complete.iter().map(|t| t.value().unwrap() as i64).collect();
        values.sort_unstable();
        let expected: Vec<i64> = (0..4)
            .flat_map(|a| (0..5).map(move |b| a * 10 + b))
            .collect();
        assert_eq!(values, expected, "each grid point exactly once");
        // A later call finds the grid used up and creates no trial.
        let before = study.trials().unwrap().len();
        study.optimize(objective, Optimize::trials(5)).unwrap();
        assert_eq!(study.trials().unwrap().len(), before);
    }

    #[test]
    fn empty_lists_are_rejected_with_the_name() {
        let mut g = BTreeMap::new();
        g.insert("lr".to_owned(), vec![]);
        let err = GridSampler::new(g).unwrap_err().to_string();
        assert!(err.contains("`lr`"), "{err}");
    }
}
