//! `InMemoryStorage`: studies in this process's memory, for single-process studies and tests.

use super::{FrozenStudy, Storage, StudyId};
use crate::error::{Error, Result};
use crate::study::Direction;
use crate::trial::{FrozenTrial, Param, TrialId, TrialState};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime};

/// A storage that keeps everything in memory behind one lock.
///
/// Trials are held as `Arc<FrozenTrial>` and updated copy-on-write, so a snapshot handed to a
/// sampler is never changed by later writes, and taking one costs a pointer copy per trial.
#[derive(Debug, Default)]
pub struct InMemoryStorage {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    studies: BTreeMap<StudyId, StudyRecord>,
    /// Where each trial lives, indexed by id (ids are dense): its study and its index
    /// (= number) there; `None` once its study is deleted.
    locations: Vec<Option<(StudyId, usize)>>,
    next_study: u64,
    next_trial: u64,
}

#[derive(Debug)]
struct StudyRecord {
    study: FrozenStudy,
    trials: Vec<Arc<FrozenTrial>>,
    /// Numbers of the Waiting trials, so claiming one does not scan the study.
    waiting: BTreeSet<usize>,
    /// How many parameters the last finished trial had: the room a new trial starts with.
    params_hint: usize,
    /// Last heartbeat of Running trials, by trial number.
    heartbeats: HashMap<usize, Instant>,
}

impl InMemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-updated (every write is a
        // single assignment after validation), so a poisoned lock is still consistent.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn study(&self, id: StudyId) -> Result<&StudyRecord> {
        self.studies
            .get(&id)
            .ok_or_else(|| Error::StudyNotFound(format!("id {}", id.0)))
    }

    fn study_mut(&mut self, id: StudyId) -> Result<&mut StudyRecord> {
        self.studies
            .get_mut(&id)
            .ok_or_else(|| Error::StudyNotFound(format!("id {}", id.0)))
    }

    fn location(&self, id: TrialId) -> Result<(StudyId, usize)> {
        usize::try_from(id.0)
            .ok()
            .and_then(|i| self.locations.get(i).copied().flatten())
            .ok_or_else(|| Error::TrialNotFound(id.to_string()))
    }

    fn trial(&self, id: TrialId) -> Result<&Arc<FrozenTrial>> {
        let (study, index) = self.location(id)?;
        Ok(&self.study(study)?.trials[index])
    }

    /// The trial for a write: errors when it is already finished.
    fn live_trial_mut(&mut self, id: TrialId) -> Result<&mut FrozenTrial> {
        let (study, index) = self.location(id)?;
        let trial = Arc::make_mut(&mut self.study_mut(study)?.trials[index]);
        if trial.state.is_finished() {
            return Err(Error::TrialFinished {
                number: trial.number,
                state: trial.state,
            });
        }
        Ok(trial)
    }

    fn push_trial(&mut self, study: StudyId, mut trial: FrozenTrial) -> Result<FrozenTrial> {
        let id = TrialId(self.next_trial);
        debug_assert_eq!(self.locations.len() as u64, self.next_trial);
        let record = self.study_mut(study)?;
        trial.id = id;
        trial.number = record.trials.len() as u64;
        let index = record.trials.len();
        if trial.state == TrialState::Waiting {
            record.waiting.insert(index);
        }
        let copy = trial.clone();
        if !trial.state.is_finished() && trial.params.is_empty() {
            trial.params.reserve(record.params_hint);
        }
        record.trials.push(Arc::new(trial));
        self.locations.push(Some((study, index)));
        self.next_trial += 1;
        Ok(copy)
    }
}

impl Storage for InMemoryStorage {
    fn create_study(
        &self,
        name: &str,
        directions: &[Direction],
        system_attrs: &BTreeMap<String, Value>,
    ) -> Result<StudyId> {
        let mut inner = self.write();
        if inner.studies.values().any(|s| s.study.name == name) {
            return Err(Error::DuplicateStudy(name.to_owned()));
        }
        let id = StudyId(inner.next_study);
        inner.next_study += 1;
        inner.studies.insert(
            id,
            StudyRecord {
                study: FrozenStudy {
                    id,
                    name: name.to_owned(),
                    directions: directions.to_vec(),
                    user_attrs: BTreeMap::new(),
                    system_attrs: system_attrs.clone(),
                    created: SystemTime::now(),
                },
                trials: Vec::new(),
                waiting: BTreeSet::new(),
                params_hint: 0,
                heartbeats: HashMap::new(),
            },
        );
        Ok(id)
    }

    fn study_by_name(&self, name: &str) -> Result<FrozenStudy> {
        self.read()
            .studies
            .values()
            .find(|s| s.study.name == name)
            .map(|s| s.study.clone())
            .ok_or_else(|| Error::StudyNotFound(name.to_owned()))
    }

    fn study(&self, id: StudyId) -> Result<FrozenStudy> {
        Ok(self.read().study(id)?.study.clone())
    }

    fn studies(&self) -> Result<Vec<FrozenStudy>> {
        Ok(self
            .read()
            .studies
            .values()
            .map(|s| s.study.clone())
            .collect())
    }

    fn delete_study(&self, id: StudyId) -> Result<()> {
        let mut inner = self.write();
        let record = inner
            .studies
            .remove(&id)
            .ok_or_else(|| Error::StudyNotFound(format!("id {}", id.0)))?;
        for t in &record.trials {
            if let Some(slot) = usize::try_from(t.id.0)
                .ok()
                .and_then(|i| inner.locations.get_mut(i))
            {
                *slot = None;
            }
        }
        Ok(())
    }

    fn rename_study(&self, id: StudyId, name: &str) -> Result<()> {
        let mut inner = self.write();
        if inner
            .studies
            .values()
            .any(|s| s.study.name == name && s.study.id != id)
        {
            return Err(Error::DuplicateStudy(name.to_owned()));
        }
        inner.study_mut(id)?.study.name = name.to_owned();
        Ok(())
    }

    fn set_study_user_attr(&self, id: StudyId, key: &str, value: &Value) -> Result<()> {
        let mut inner = self.write();
        let study = &mut inner.study_mut(id)?.study;
        study.user_attrs.insert(key.to_owned(), value.clone());
        Ok(())
    }

    fn set_study_system_attr(&self, id: StudyId, key: &str, value: &Value) -> Result<()> {
        let mut inner = self.write();
        let study = &mut inner.study_mut(id)?.study;
        study.system_attrs.insert(key.to_owned(), value.clone());
        Ok(())
    }

    fn set_study_system_attr_if_absent(
        &self,
        id: StudyId,
        key: &str,
        value: &Value,
    ) -> Result<Value> {
        let mut inner = self.write();
        let study = &mut inner.study_mut(id)?.study;
        Ok(study
            .system_attrs
            .entry(key.to_owned())
            .or_insert_with(|| value.clone())
            .clone())
    }

    fn compare_and_set_study_system_attr(
        &self,
        id: StudyId,
        key: &str,
        expected: Option<&Value>,
        new: &Value,
    ) -> Result<bool> {
        let mut inner = self.write();
        let attrs = &mut inner.study_mut(id)?.study.system_attrs;
        if attrs.get(key) != expected {
            return Ok(false);
        }
        attrs.insert(key.to_owned(), new.clone());
        Ok(true)
    }

    fn study_system_attr(&self, id: StudyId, key: &str) -> Result<Option<Value>> {
        Ok(self.read().study(id)?.study.system_attrs.get(key).cloned())
    }

    fn create_trial(&self, study: StudyId, max_trials: Option<u64>) -> Result<Option<FrozenTrial>> {
        let mut inner = self.write();
        if let Some(max) = max_trials {
            if inner.study(study)?.trials.len() as u64 >= max {
                return Ok(None);
            }
        }
        let trial = FrozenTrial::new_running(TrialId(0), 0);
        inner.push_trial(study, trial).map(Some)
    }

    fn add_trial(&self, study: StudyId, template: &FrozenTrial) -> Result<FrozenTrial> {
        self.write().push_trial(study, template.clone())
    }

    fn set_trial_param(&self, trial: TrialId, param: &Param) -> Result<()> {
        let mut inner = self.write();
        inner.live_trial_mut(trial)?.params.set(param.clone())
    }

    fn set_trial_intermediate_value(
        &self,
        trial: TrialId,
        step: u64,
        values: &[f64],
    ) -> Result<()> {
        let mut inner = self.write();
        let t = inner.live_trial_mut(trial)?;
        t.intermediate_values.insert(step, values.to_vec());
        Ok(())
    }

    fn set_trial_user_attr(&self, trial: TrialId, key: &str, value: &Value) -> Result<()> {
        let mut inner = self.write();
        let t = inner.live_trial_mut(trial)?;
        t.user_attrs.insert(key.to_owned(), value.clone());
        Ok(())
    }

    fn set_trial_system_attr(&self, trial: TrialId, key: &str, value: &Value) -> Result<()> {
        let mut inner = self.write();
        let t = inner.live_trial_mut(trial)?;
        t.system_attrs.insert(key.to_owned(), value.clone());
        Ok(())
    }

    fn set_trial_state(
        &self,
        trial: TrialId,
        expected: TrialState,
        new: TrialState,
        values: Option<&[f64]>,
        fail_reason: Option<&str>,
    ) -> Result<bool> {
        let mut inner = self.write();
        let current = inner.trial(trial)?.state;
        if current != expected {
            return Ok(false);
        }
        let (study, index) = inner.location(trial)?;
        let record = inner.study_mut(study)?;
        record.heartbeats.remove(&index);
        record.waiting.remove(&index);
        if new == TrialState::Waiting {
            record.waiting.insert(index);
        }
        let t = inner.live_trial_mut(trial)?;
        t.state = new;
        if let Some(v) = values {
            t.values = Some(v.to_vec());
        }
        if let Some(reason) = fail_reason {
            t.fail_reason = Some(reason.to_owned());
        }
        let now = SystemTime::now();
        if new == TrialState::Running {
            t.datetime_start = Some(now);
        }
        if new.is_finished() {
            t.datetime_complete = Some(now);
            // The trial is final: drop the room it was given and size the next one by it.
            t.params.shrink_to_fit();
            let n = t.params.len();
            inner.study_mut(study)?.params_hint = n;
        }
        Ok(true)
    }

    fn record_heartbeat(&self, trial: TrialId) -> Result<()> {
        let mut inner = self.write();
        let (study, index) = inner.location(trial)?;
        let record = inner.study_mut(study)?;
        let state = record.trials[index].state;
        if state != TrialState::Running {
            return Err(Error::TrialFinished {
                number: index as u64,
                state,
            });
        }
        record.heartbeats.insert(index, Instant::now());
        Ok(())
    }

    fn stale_trials(&self, study: StudyId, grace: Duration) -> Result<Vec<TrialId>> {
        let inner = self.read();
        let record = inner.study(study)?;
        let mut stale: Vec<TrialId> = record
            .heartbeats
            .iter()
            .filter(|(_, beat)| beat.elapsed() > grace)
            .map(|(&index, _)| &record.trials[index])
            .filter(|t| t.state == TrialState::Running)
            .map(|t| t.id)
            .collect();
        stale.sort_unstable();
        Ok(stale)
    }

    fn trial(&self, trial: TrialId) -> Result<Arc<FrozenTrial>> {
        self.read().trial(trial).cloned()
    }

    fn trials(
        &self,
        study: StudyId,
        states: Option<&[TrialState]>,
    ) -> Result<Vec<Arc<FrozenTrial>>> {
        let inner = self.read();
        let trials = &inner.study(study)?.trials;
        Ok(match states {
            None => trials.clone(),
            Some(states) => trials
                .iter()
                .filter(|t| states.contains(&t.state))
                .cloned()
                .collect(),
        })
    }

    fn claim_waiting_trial(&self, study: StudyId) -> Result<Option<Arc<FrozenTrial>>> {
        let mut inner = self.write();
        let Some(index) = inner.study_mut(study)?.waiting.pop_first() else {
            return Ok(None);
        };
        let record = inner.study_mut(study)?;
        let t = Arc::make_mut(&mut record.trials[index]);
        t.state = TrialState::Running;
        t.datetime_start = Some(SystemTime::now());
        Ok(Some(record.trials[index].clone()))
    }

    fn n_trials(&self, study: StudyId, states: Option<&[TrialState]>) -> Result<u64> {
        let inner = self.read();
        let trials = &inner.study(study)?.trials;
        Ok(match states {
            None => trials.len() as u64,
            Some(states) => trials.iter().filter(|t| states.contains(&t.state)).count() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_conformance_suite() {
        crate::storage::conformance::run_all(InMemoryStorage::new);
    }
}
