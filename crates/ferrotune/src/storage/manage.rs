//! Study management across storages: summaries, delete and rename by name, and copying a
//! study (its configuration, attributes and every trial) from one storage to another.

use super::{FrozenStudy, Storage, StudyId};
use crate::error::{Error, Result};
use crate::study::{best_of, Direction, StudyConfig};
use crate::trial::TrialState;
use serde::Serialize;
use std::time::SystemTime;

/// One line of a study listing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StudySummary {
    /// The study's name.
    pub name: String,
    /// One direction per objective.
    pub directions: Vec<Direction>,
    /// All trials, whatever their state.
    pub n_trials: u64,
    /// Complete trials.
    pub n_complete: u64,
    /// The best feasible value of a single-objective study.
    pub best_value: Option<f64>,
    /// When the study was created.
    pub created: SystemTime,
    /// The stored configuration (sampler, pruner, seed, version), when there is one.
    pub config: Option<StudyConfig>,
}

/// Summaries of every study in `storage`, in creation order.
pub fn study_summaries(storage: &dyn Storage) -> Result<Vec<StudySummary>> {
    storage
        .studies()?
        .into_iter()
        .map(|study| summarize(storage, study))
        .collect()
}

fn summarize(storage: &dyn Storage, study: FrozenStudy) -> Result<StudySummary> {
    let trials = storage.trials(study.id, None)?;
    let complete = trials.iter().filter(|t| t.state == TrialState::Complete);
    let best_value = match study.directions.as_slice() {
        [direction] => {
            best_of(complete.clone().map(|t| t.as_ref()), *direction).and_then(|t| t.value())
        }
        _ => None,
    };
    Ok(StudySummary {
        n_trials: trials.len() as u64,
        n_complete: complete.count() as u64,
        best_value,
        config: StudyConfig::of(&study),
        name: study.name,
        directions: study.directions,
        created: study.created,
    })
}

/// Deletes the study called `name` with all its trials.
pub fn delete_study(storage: &dyn Storage, name: &str) -> Result<()> {
    let study = storage.study_by_name(name)?;
    storage.delete_study(study.id)
}

/// Renames the study called `from` to `to`.
pub fn rename_study(storage: &dyn Storage, from: &str, to: &str) -> Result<()> {
    let study = storage.study_by_name(from)?;
    storage.rename_study(study.id, to)
}

/// Copies the study `name` of `from` into `to` as `new_name`: directions, configuration,
/// attributes and every trial in number order (states, parameters, values, intermediate
/// values and attributes as they are), so the copy reopens with the same sampler, pruner
/// and seed. Errors with `DuplicateStudy` when `new_name` exists in `to`; a failure half-way
/// deletes the partial copy.
pub fn copy_study(
    from: &dyn Storage,
    name: &str,
    to: &dyn Storage,
    new_name: &str,
) -> Result<StudyId> {
    let study = from.study_by_name(name)?;
    let trials = from.trials(study.id, None)?;
    let id = to.create_study(new_name, &study.directions, &study.system_attrs)?;
    let copied = (|| -> Result<()> {
        for (key, value) in &study.user_attrs {
            to.set_study_user_attr(id, key, value)?;
        }
        for trial in &trials {
            let stored = to.add_trial(id, trial)?;
            if stored.number != trial.number {
                return Err(Error::Storage(format!(
                    "trial #{} was stored as #{} in the copy (was `{new_name}` written to while copying?)",
                    trial.number, stored.number
                )));
            }
        }
        Ok(())
    })();
    if let Err(e) = copied {
        let _ = to.delete_study(id);
        return Err(e);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::InMemoryStorage;
    use crate::{Optimize, Study, Trial, TrialError};
    use std::sync::Arc;

    fn populated(storage: Arc<dyn Storage>) -> Study {
        let study = Study::builder()
            .name("src")
            .storage(storage)
            .seed(9)
            .build()
            .unwrap();
        study.set_user_attr("owner", "me").unwrap();
        study
            .optimize(
                |t: &mut Trial| -> Result<f64, TrialError> {
                    let x = t.suggest_float("x", -1.0, 1.0)?;
                    t.report(0, x * 2.0)?;
                    if t.number() == 3 {
                        return Err(TrialError::Pruned);
                    }
                    Ok(x * x)
                },
                Optimize::trials(8),
            )
            .unwrap();
        study
    }

    #[test]
    fn copies_everything_between_storages() {
        let a: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
        let b: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
        let src = populated(a.clone());
        copy_study(&*a, "src", &*b, "dst").unwrap();
        let dst = Study::load(b.clone(), "dst").unwrap();
        assert_eq!(dst.config(), src.config());
        assert_eq!(b.study_by_name("dst").unwrap().user_attrs["owner"], "me");
        let (ta, tb) = (src.trials().unwrap(), dst.trials().unwrap());
        assert_eq!(ta.len(), tb.len());
        for (x, y) in ta.iter().zip(&tb) {
            assert_eq!(x.number, y.number);
            assert_eq!(x.state, y.state);
            assert_eq!(x.params, y.params);
            assert_eq!(x.values, y.values);
            assert_eq!(x.intermediate_values, y.intermediate_values);
        }
        assert!(matches!(
            copy_study(&*a, "src", &*b, "dst"),
            Err(Error::DuplicateStudy(_))
        ));
    }

    #[test]
    fn summaries_rename_and_delete() {
        let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
        let study = populated(storage.clone());
        let list = study_summaries(&*storage).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].n_trials, 8);
        assert_eq!(list[0].n_complete, 7);
        assert_eq!(list[0].best_value, Some(study.best_value().unwrap()));
        assert_eq!(list[0].config.as_ref().map(|c| c.seed), Some(9));
        rename_study(&*storage, "src", "renamed").unwrap();
        assert!(Study::load(storage.clone(), "renamed").is_ok());
        delete_study(&*storage, "renamed").unwrap();
        assert!(study_summaries(&*storage).unwrap().is_empty());
        assert!(matches!(
            delete_study(&*storage, "renamed"),
            Err(Error::StudyNotFound(_))
        ));
    }
}
