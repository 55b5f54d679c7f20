//! Storage: the one place where trials are coordinated.
//!
//! Samplers, pruners and workers never talk to each other; they read and write a study through
//! a [`Storage`]. The same code therefore runs in one thread, many threads, or many processes on
//! many machines that share a database.

mod manage;
mod memory;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use manage::{copy_study, delete_study, rename_study, study_summaries, StudySummary};
pub use memory::InMemoryStorage;

use crate::error::Result;
use crate::study::Direction;
use crate::trial::{FrozenTrial, Param, TrialId, TrialState};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A storage-wide study identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StudyId(pub u64);

/// A snapshot of a study's own record (not its trials).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrozenStudy {
    /// Storage-wide id.
    pub id: StudyId,
    /// Unique name.
    pub name: String,
    /// One direction per objective.
    pub directions: Vec<Direction>,
    /// The user's JSON attributes.
    pub user_attrs: BTreeMap<String, Value>,
    /// ferrotune's JSON attributes: the study configuration, sampler bookkeeping.
    pub system_attrs: BTreeMap<String, Value>,
    /// When the study was created.
    pub created: SystemTime,
}

/// The storage contract.
///
/// # Who calls it
/// `Study` and `Trial` call it for every write; samplers and pruners read it through a
/// `StudyView`. Users rarely call it directly.
///
/// # Thread safety and ownership
/// Implementations are `Send + Sync` and every method takes `&self`: one storage serves many
/// threads, and for database backends many processes. A value read from storage never aliases
/// later writes (snapshots are copies or copy-on-write).
///
/// - Trial numbers are dense per study (0, 1, 2, …) and assigned atomically by
///   [`create_trial`](Storage::create_trial) and [`add_trial`](Storage::add_trial).
/// - [`set_trial_state`](Storage::set_trial_state) is a compare-and-set: it changes the state
///   only when the trial is in the expected state and reports whether this caller won. Leaving
///   Running, and claiming a Waiting or Paused trial (→ Running), go through it, so two workers
///   can never both finish or both claim one trial.
/// - A finished trial (Complete, Pruned, Fail) never changes again; writing to it is
///   [`Error::TrialFinished`](crate::Error::TrialFinished).
/// - [`set_study_system_attr_if_absent`](Storage::set_study_system_attr_if_absent) is
///   first-writer-wins, for samplers whose workers must agree (the grid's point claims).
/// - [`compare_and_set_study_system_attr`](Storage::compare_and_set_study_system_attr) is a
///   compare-and-set of one system attribute, for state that workers update together
///   (a scheduler's rungs, promotions, populations) in a read–modify–CAS loop.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Creates a study. Errors with `DuplicateStudy` when the name is taken.
    fn create_study(
        &self,
        name: &str,
        directions: &[Direction],
        system_attrs: &BTreeMap<String, Value>,
    ) -> Result<StudyId>;

    /// Looks a study up by name. Errors with `StudyNotFound`.
    fn study_by_name(&self, name: &str) -> Result<FrozenStudy>;

    /// Looks a study up by id. Errors with `StudyNotFound`.
    fn study(&self, id: StudyId) -> Result<FrozenStudy>;

    /// All studies, in creation order.
    fn studies(&self) -> Result<Vec<FrozenStudy>>;

    /// Deletes a study and all its trials.
    fn delete_study(&self, id: StudyId) -> Result<()>;

    /// Renames a study. Errors with `DuplicateStudy` when the new name is taken.
    fn rename_study(&self, id: StudyId, name: &str) -> Result<()>;

    /// Sets a user attribute of a study (last writer wins).
    fn set_study_user_attr(&self, id: StudyId, key: &str, value: &Value) -> Result<()>;

    /// Sets a system attribute of a study (last writer wins).
    fn set_study_system_attr(&self, id: StudyId, key: &str, value: &Value) -> Result<()>;

    /// Sets a system attribute only if it is absent, atomically; returns the value that is
    /// stored afterwards (the caller's when it won, the earlier writer's otherwise).
    fn set_study_system_attr_if_absent(
        &self,
        id: StudyId,
        key: &str,
        value: &Value,
    ) -> Result<Value>;

    /// Replaces system attribute `key` of study `id` with `new` only if its stored value
    /// equals `expected` (`None`: the attribute is absent), atomically; returns whether this
    /// caller won (`Ok(false)` changes nothing). Errors with `StudyNotFound`.
    ///
    /// Equality is JSON value equality (`serde_json::Value`'s `==`), not equality of the
    /// stored text. Schedulers keep their state (rungs, promotions, populations) in one
    /// attribute and update it in a loop of [`study_system_attr`](Storage::study_system_attr),
    /// change, compare-and-set (again from the read when it lost), so concurrent workers on
    /// many machines never lose an update:
    ///
    /// ```
    /// use ferrotune::storage::{InMemoryStorage, Storage};
    /// use ferrotune::study::Direction;
    /// use serde_json::json;
    /// use std::collections::BTreeMap;
    ///
    /// let storage = InMemoryStorage::new();
    /// let id = storage.create_study("s", &[Direction::Minimize], &BTreeMap::new())?;
    /// loop {
    ///     let old = storage.study_system_attr(id, "count")?;
    ///     let n = old.as_ref().and_then(|v| v["n"].as_u64()).unwrap_or(0);
    ///     let new = json!({ "n": n + 1 });
    ///     if storage.compare_and_set_study_system_attr(id, "count", old.as_ref(), &new)? {
    ///         break;
    ///     }
    /// }
    /// assert_eq!(storage.study_system_attr(id, "count")?, Some(json!({ "n": 1 })));
    /// # Ok::<(), ferrotune::Error>(())
    /// ```
    fn compare_and_set_study_system_attr(
        &self,
        id: StudyId,
        key: &str,
        expected: Option<&Value>,
        new: &Value,
    ) -> Result<bool>;

    /// Reads one system attribute of a study.
    fn study_system_attr(&self, id: StudyId, key: &str) -> Result<Option<Value>> {
        Ok(self.study(id)?.system_attrs.get(key).cloned())
    }

    /// Creates a new Running trial with the next number. With `max_trials`, the trial is only
    /// created while the study holds fewer than `max_trials` trials (checked atomically with
    /// the creation); `Ok(None)` means the cap is reached.
    fn create_trial(&self, study: StudyId, max_trials: Option<u64>) -> Result<Option<FrozenTrial>>;

    /// Inserts a copy of `template` (any state, e.g. a finished trial for warm starts or a
    /// Waiting one for the queue) with the next number and a new id; returns the stored record.
    fn add_trial(&self, study: StudyId, template: &FrozenTrial) -> Result<FrozenTrial>;

    /// Records a parameter of a Running trial (see [`Params::set`](crate::trial::Params::set)): a name already set with
    /// the same distribution gets the new value; with another distribution it is
    /// [`Error::IncompatibleDistribution`](crate::Error::IncompatibleDistribution). Cloning
    /// `param` shares its name and distribution, so keeping it costs no allocation per name.
    fn set_trial_param(&self, trial: TrialId, param: &Param) -> Result<()>;

    /// Records the intermediate values (one per objective) at `step`; a later write for the
    /// same step replaces the earlier one.
    fn set_trial_intermediate_value(&self, trial: TrialId, step: u64, values: &[f64])
        -> Result<()>;

    /// Sets a user attribute of a trial.
    fn set_trial_user_attr(&self, trial: TrialId, key: &str, value: &Value) -> Result<()>;

    /// Sets a system attribute of a trial.
    fn set_trial_system_attr(&self, trial: TrialId, key: &str, value: &Value) -> Result<()>;

    /// Compare-and-set of a trial's state: when the trial is in `expected`, moves it to `new`
    /// with `values` and `fail_reason` and returns `Ok(true)`; otherwise changes nothing and
    /// returns `Ok(false)`. Entering Running stamps a new start time; entering a finished
    /// state stamps the completion time.
    fn set_trial_state(
        &self,
        trial: TrialId,
        expected: TrialState,
        new: TrialState,
        values: Option<&[f64]>,
        fail_reason: Option<&str>,
    ) -> Result<bool>;

    /// Records that a Running trial is alive, stamped with the storage's own clock (a
    /// database's, not the worker's: machines drift). Entering Running through
    /// [`set_trial_state`](Storage::set_trial_state) clears the heartbeat, so a claimed or
    /// resumed trial starts without one.
    fn record_heartbeat(&self, trial: TrialId) -> Result<()>;

    /// The Running trials of `study` whose last heartbeat is older than `grace` by the
    /// storage's clock. Trials that never had a heartbeat, and trials in any other state
    /// (Paused ones included), are never stale.
    fn stale_trials(&self, study: StudyId, grace: Duration) -> Result<Vec<TrialId>>;

    /// One trial by id.
    fn trial(&self, trial: TrialId) -> Result<Arc<FrozenTrial>>;

    /// A study's trials in number order, optionally only those in `states`.
    fn trials(
        &self,
        study: StudyId,
        states: Option<&[TrialState]>,
    ) -> Result<Vec<Arc<FrozenTrial>>>;

    /// How many trials a study holds, optionally only those in `states`.
    fn n_trials(&self, study: StudyId, states: Option<&[TrialState]>) -> Result<u64> {
        Ok(self.trials(study, states)?.len() as u64)
    }

    /// Claims the lowest-numbered Waiting trial (Waiting → Running by compare-and-set), or
    /// returns `None` when no trial is waiting.
    fn claim_waiting_trial(&self, study: StudyId) -> Result<Option<Arc<FrozenTrial>>> {
        for t in self.trials(study, Some(&[TrialState::Waiting]))? {
            if self.set_trial_state(t.id, TrialState::Waiting, TrialState::Running, None, None)? {
                return Ok(Some(self.trial(t.id)?));
            }
        }
        Ok(None)
    }
}
