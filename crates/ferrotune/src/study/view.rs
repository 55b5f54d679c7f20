//! `StudyView`: the read-only window through which samplers and pruners see a study.

use crate::error::Result;
use crate::storage::{Storage, StudyId};
use crate::study::Direction;
use crate::trial::{FrozenTrial, TrialState};
use std::cell::OnceCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A predicate that hides trials from a view (e.g. Hyperband shows a sampler one bracket).
pub type TrialFilter = Arc<dyn Fn(&FrozenTrial) -> bool + Send + Sync>;

/// A study's stop request, shared by everything that may end it (the user, a callback, a
/// sampler whose space is exhausted, Ctrl-C).
#[derive(Debug, Default)]
pub struct StopSignal {
    stopped: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl StopSignal {
    /// Asks the study to stop before its next trial; the first reason given is kept.
    pub fn stop(&self, reason: &str) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(reason.to_owned());
        }
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Why the study was stopped.
    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Clears the request, so a later `optimize` call runs again.
    pub fn reset(&self) {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.stopped.store(false, Ordering::SeqCst);
    }
}

/// What a sampler or pruner sees of a study: its identity, directions and seed, and a snapshot
/// of its trials taken on first use (so a sampler that never reads the history, such as random
/// search, costs nothing per trial however large the study grows).
pub struct StudyView<'a> {
    storage: &'a dyn Storage,
    study_id: StudyId,
    name: &'a str,
    directions: &'a [Direction],
    seed: u64,
    stop: &'a StopSignal,
    filter: Option<TrialFilter>,
    snapshot: OnceCell<Vec<Arc<FrozenTrial>>>,
}

impl<'a> StudyView<'a> {
    /// A view of a study in `storage`.
    pub fn new(
        storage: &'a dyn Storage,
        study_id: StudyId,
        name: &'a str,
        directions: &'a [Direction],
        seed: u64,
        stop: &'a StopSignal,
    ) -> Self {
        StudyView {
            storage,
            study_id,
            name,
            directions,
            seed,
            stop,
            filter: None,
            snapshot: OnceCell::new(),
        }
    }

    /// The same study, showing only the trials `filter` accepts.
    pub fn filtered(&self, filter: TrialFilter) -> StudyView<'a> {
        StudyView {
            storage: self.storage,
            study_id: self.study_id,
            name: self.name,
            directions: self.directions,
            seed: self.seed,
            stop: self.stop,
            filter: Some(filter),
            snapshot: OnceCell::new(),
        }
    }

    /// The storage, for samplers that coordinate through study attributes.
    pub fn storage(&self) -> &'a dyn Storage {
        self.storage
    }
    /// The study's id in storage.
    pub fn study_id(&self) -> StudyId {
        self.study_id
    }
    /// Whether a filter hides some of the study's trials (state kept across calls for the
    /// whole study, such as a sampler's cache, must not be mixed with a filtered view's).
    pub fn is_filtered(&self) -> bool {
        self.filter.is_some()
    }
    /// The study's name.
    pub fn name(&self) -> &str {
        self.name
    }
    /// One direction per objective.
    pub fn directions(&self) -> &[Direction] {
        self.directions
    }
    /// The study seed every random stream is derived from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Asks the study to stop before its next trial (e.g. a grid that is used up).
    pub fn stop(&self, reason: &str) {
        self.stop.stop(reason);
    }

    /// All visible trials in number order, read once per view.
    pub fn trials(&self) -> Result<&[Arc<FrozenTrial>]> {
        if let Some(s) = self.snapshot.get() {
            return Ok(s);
        }
        let mut trials = self.storage.trials(self.study_id, None)?;
        if let Some(f) = &self.filter {
            trials.retain(|t| f(t));
        }
        Ok(self.snapshot.get_or_init(|| trials))
    }

    /// The visible trials in one of `states`.
    pub fn trials_in<'s>(
        &'s self,
        states: &'s [TrialState],
    ) -> Result<impl Iterator<Item = &'s FrozenTrial> + 's> {
        Ok(self
            .trials()?
            .iter()
            .map(|t| t.as_ref())
            .filter(move |t| states.contains(&t.state)))
    }

    /// The best Complete trial of a single-objective study (feasible trials first), if any.
    pub fn best_trial(&self) -> Result<Option<&FrozenTrial>> {
        let direction = self.directions[0];
        Ok(crate::study::best_of(
            self.trials_in(&[TrialState::Complete])?,
            direction,
        ))
    }
}
