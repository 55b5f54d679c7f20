//! What TPE keeps between asks. A finished (Complete or Pruned) trial never changes, so its
//! parameters are converted to the model scale once, and the search space shared by all
//! finished trials is extended with new trials only; an ask at n finished trials then costs
//! O(n) cheap lookups instead of O(n·d) name searches and conversions. The results are
//! exactly those computed without the cache.

use super::{to_model, SearchSpace};
use crate::space::Distribution;
use crate::storage::StudyId;
use crate::trial::{FrozenTrial, TrialId, TrialState};

/// One parameter's model-scale values in finished trials, indexed by trial number.
#[derive(Debug)]
struct Column {
    name: String,
    distribution: Distribution,
    /// `(trial, value)` per trial number; `value` is `None` when the trial lacks the
    /// parameter or its value lies outside `distribution`.
    slots: Vec<Option<(TrialId, Option<f64>)>>,
}

/// The running intersection of finished trials' search spaces.
#[derive(Debug, Default)]
struct Intersection {
    /// Per trial number, the trial already intersected there.
    seen: Vec<Option<TrialId>>,
    space: Option<SearchSpace>,
}

/// Per-study caches; a sampler used for another study starts them afresh.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    study: Option<StudyId>,
    columns: Vec<Column>,
    intersection: Intersection,
}

fn is_finished(t: &FrozenTrial) -> bool {
    matches!(t.state, TrialState::Complete | TrialState::Pruned)
}

/// A trial's parameter on the model scale, if it has it and the value lies in `dist`.
fn observed(t: &FrozenTrial, name: &str, dist: &Distribution) -> Option<f64> {
    let internal = dist.to_internal(t.params.get(name)?).ok()?;
    Some(to_model(dist, internal))
}

impl Cache {
    fn for_study(&mut self, study: StudyId) {
        if self.study != Some(study) {
            *self = Cache {
                study: Some(study),
                ..Cache::default()
            };
        }
    }

    fn column(&mut self, name: &str, distribution: &Distribution) -> usize {
        match self
            .columns
            .iter()
            .position(|c| c.name == name && &c.distribution == distribution)
        {
            Some(i) => i,
            None => {
                self.columns.push(Column {
                    name: name.to_owned(),
                    distribution: distribution.clone(),
                    slots: Vec::new(),
                });
                self.columns.len() - 1
            }
        }
    }

    /// Appends to `out` the model-scale values of `params` for every trial of `group` that
    /// has them all, row by row, and returns how many rows were written.
    pub fn observations(
        &mut self,
        study: StudyId,
        group: &[&FrozenTrial],
        params: &[(&str, &Distribution)],
        out: &mut Vec<f64>,
    ) -> usize {
        self.for_study(study);
        let columns: Vec<usize> = params.iter().map(|(n, d)| self.column(n, d)).collect();
        let mut rows = 0;
        'trials: for t in group {
            let start = out.len();
            for &c in &columns {
                let value = self.value(c, t);
                match value {
                    Some(x) => out.push(x),
                    None => {
                        out.truncate(start);
                        continue 'trials;
                    }
                }
            }
            rows += 1;
        }
        rows
    }

    fn value(&mut self, column: usize, t: &FrozenTrial) -> Option<f64> {
        let c = &mut self.columns[column];
        if !is_finished(t) {
            return observed(t, &c.name, &c.distribution);
        }
        let i = t.number as usize;
        if let Some(Some((id, value))) = c.slots.get(i) {
            if *id == t.id {
                return *value;
            }
        }
        let value = observed(t, &c.name, &c.distribution);
        if c.slots.len() <= i {
            c.slots.resize(i + 1, None);
        }
        c.slots[i] = Some((t.id, value));
        value
    }

    /// The parameters (with a non-degenerate distribution) every finished trial among
    /// `trials` shares with the same distribution; extended incrementally as trials finish.
    pub fn intersection<'t>(
        &mut self,
        study: StudyId,
        trials: impl Iterator<Item = &'t FrozenTrial>,
    ) -> SearchSpace {
        self.for_study(study);
        let cache = &mut self.intersection;
        for t in trials.filter(|t| is_finished(t)) {
            let i = t.number as usize;
            if cache.seen.len() <= i {
                cache.seen.resize(i + 1, None);
            }
            if cache.seen[i] == Some(t.id) {
                continue;
            }
            cache.seen[i] = Some(t.id);
            match &mut cache.space {
                None => {
                    cache.space = Some(
                        t.params
                            .distributions()
                            .filter(|(_, d)| !d.is_single())
                            .map(|(n, d)| (n.to_owned(), d.clone()))
                            .collect(),
                    )
                }
                Some(s) => s.retain(|n, d| t.params.distribution(n) == Some(d)),
            }
        }
        cache.space.clone().unwrap_or_default()
    }
}
