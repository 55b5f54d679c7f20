//! What TPE keeps between asks. A finished (Complete or Pruned) trial never changes, so its
//! parameters are converted to the model scale once, and the search space shared by all
//! finished trials is extended with new trials only; an ask at n finished trials then costs
//! O(n) cheap lookups instead of O(n·d) name searches and conversions. The results are
//! exactly those computed without the cache.

use super::{to_model, SearchSpace};
use crate::sampler::intersect_with;
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
    /// Numbers of the slotted trials that have a value, ascending by (value, number): a
    /// group's sorted order (for the neighbour bandwidth rule) is read off it in O(n).
    sorted: Vec<u64>,
}

/// The running intersection of finished trials' search spaces.
#[derive(Debug, Default)]
struct Intersection {
    /// Per trial number, the trial already intersected there.
    seen: Vec<Option<TrialId>>,
    space: Option<SearchSpace>,
}

/// The partition of parameter names by the finished trials they occur in: two names share
/// a group when every finished trial has both or neither. Refined incrementally: each new
/// trial splits every group into the names it has and the names it lacks, and its unseen
/// names form a new group (Optuna's group decomposition for `group=True`). A name keeps
/// the distribution it was first seen with.
#[derive(Debug, Default)]
struct Groups {
    seen: Vec<Option<TrialId>>,
    groups: Vec<Vec<String>>,
    distributions: std::collections::BTreeMap<String, Distribution>,
}

/// Per-study caches; a sampler used for another study starts them afresh.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    study: Option<StudyId>,
    columns: Vec<Column>,
    intersection: Intersection,
    groups: Groups,
    /// Scratch: per trial number, its row in the group being read (`NO_ROW` if none).
    row_of: Vec<usize>,
}

const NO_ROW: usize = usize::MAX;

/// Ascending by value (IEEE total order), then by the tie-breaker.
fn cmp_key(a: (f64, usize), b: (f64, usize)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

/// Marks `t` as visited in `seen` (indexed by trial number); false when it already was.
fn first_visit(seen: &mut Vec<Option<TrialId>>, t: &FrozenTrial) -> bool {
    let i = t.number as usize;
    if seen.len() <= i {
        seen.resize(i + 1, None);
    }
    if seen[i] == Some(t.id) {
        return false;
    }
    seen[i] = Some(t.id);
    true
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
                    sorted: Vec::new(),
                });
                self.columns.len() - 1
            }
        }
    }

    /// Appends to `out` the model-scale values of `params` for every trial of `group` that
    /// has them all, row by row, and returns how many rows were written. `orders[j]` gets
    /// those rows sorted by parameter `j`'s value (ties by row).
    pub fn observations(
        &mut self,
        study: StudyId,
        group: &[&FrozenTrial],
        params: &[(&str, &Distribution)],
        out: &mut Vec<f64>,
        orders: &mut Vec<Vec<usize>>,
    ) -> usize {
        self.for_study(study);
        let columns: Vec<usize> = params.iter().map(|(n, d)| self.column(n, d)).collect();
        let d = columns.len();
        let mut rows = 0;
        // Rows of trials the columns do not index (not finished), merged in afterwards.
        let mut unindexed = Vec::new();
        'trials: for t in group {
            let start = out.len();
            for &c in &columns {
                match self.value(c, t) {
                    Some(x) => out.push(x),
                    None => {
                        out.truncate(start);
                        continue 'trials;
                    }
                }
            }
            if is_finished(t) {
                let i = t.number as usize;
                if self.row_of.len() <= i {
                    self.row_of.resize(i + 1, NO_ROW);
                }
                self.row_of[i] = rows;
            } else {
                unindexed.push(rows);
            }
            rows += 1;
        }
        orders.resize_with(d, Vec::new);
        for (j, &c) in columns.iter().enumerate() {
            let order = &mut orders[j];
            order.clear();
            let row_of = &self.row_of;
            order.extend(
                self.columns[c]
                    .sorted
                    .iter()
                    .filter_map(|&n| row_of.get(n as usize).copied())
                    .filter(|&r| r != NO_ROW),
            );
            if !unindexed.is_empty() {
                let key = |r: usize| (out[r * d + j], r);
                let mut extra = unindexed.clone();
                extra.sort_by(|&a, &b| cmp_key(key(a), key(b)));
                let indexed = std::mem::take(order);
                let (mut a, mut b) = (indexed.into_iter().peekable(), extra.into_iter().peekable());
                while let (Some(&x), Some(&y)) = (a.peek(), b.peek()) {
                    if cmp_key(key(x), key(y)).is_le() {
                        order.push(x);
                        a.next();
                    } else {
                        order.push(y);
                        b.next();
                    }
                }
                order.extend(a);
                order.extend(b);
            }
        }
        for t in group {
            if let Some(r) = self.row_of.get_mut(t.number as usize) {
                *r = NO_ROW;
            }
        }
        rows
    }

    fn value(&mut self, column: usize, t: &FrozenTrial) -> Option<f64> {
        let c = &mut self.columns[column];
        if !is_finished(t) {
            return observed(t, &c.name, &c.distribution);
        }
        let i = t.number as usize;
        match c.slots.get(i) {
            Some(Some((id, value))) if *id == t.id => return *value,
            // Another trial under this number (never within one study's storage): start
            // the column afresh rather than trust its order.
            Some(Some(_)) => {
                c.slots.clear();
                c.sorted.clear();
            }
            _ => {}
        }
        let value = observed(t, &c.name, &c.distribution);
        if c.slots.len() <= i {
            c.slots.resize(i + 1, None);
        }
        c.slots[i] = Some((t.id, value));
        if let Some(x) = value {
            let slots = &c.slots;
            let at = c.sorted.partition_point(|&n| {
                let v = slots[n as usize].and_then(|(_, v)| v).unwrap_or(f64::NAN);
                cmp_key((v, n as usize), (x, i)).is_lt()
            });
            c.sorted.insert(at, t.number);
        }
        value
    }

    /// The groups of parameters (see [`Groups`]) among `trials`' finished ones, each as a
    /// search space without single-valued distributions; groups left empty are dropped.
    pub fn groups<'t>(
        &mut self,
        study: StudyId,
        trials: impl Iterator<Item = &'t FrozenTrial>,
    ) -> Vec<SearchSpace> {
        self.for_study(study);
        let cache = &mut self.groups;
        for t in trials.filter(|t| is_finished(t)) {
            if !first_visit(&mut cache.seen, t) {
                continue;
            }
            let mut refined = Vec::with_capacity(cache.groups.len() * 2 + 1);
            for group in cache.groups.drain(..) {
                let (with, without): (Vec<String>, Vec<String>) =
                    group.into_iter().partition(|n| t.params.contains_key(n));
                refined.push(with);
                refined.push(without);
            }
            let new: Vec<String> = t
                .params
                .distributions()
                .filter(|(n, _)| !cache.distributions.contains_key(*n))
                .map(|(n, _)| n.to_owned())
                .collect();
            for (n, d) in t.params.distributions() {
                cache
                    .distributions
                    .entry(n.to_owned())
                    .or_insert_with(|| d.clone());
            }
            refined.push(new);
            refined.retain(|g| !g.is_empty());
            cache.groups = refined;
        }
        cache
            .groups
            .iter()
            .map(|g| {
                g.iter()
                    .filter_map(|n| {
                        let d = cache.distributions.get(n)?;
                        (!d.is_single()).then(|| (n.clone(), d.clone()))
                    })
                    .collect::<SearchSpace>()
            })
            .filter(|s| !s.is_empty())
            .collect()
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
            if !first_visit(&mut cache.seen, t) {
                continue;
            }
            intersect_with(&mut cache.space, t);
        }
        cache.space.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::TrialRng;
    use crate::space::FloatDistribution;
    use crate::trial::Param;

    fn trial(number: u64, state: TrialState, x: Option<f64>, y: f64) -> FrozenTrial {
        let dist: Distribution = FloatDistribution::uniform(0.0, 10.0).unwrap().into();
        let mut t = FrozenTrial::new_running(TrialId(1000 + number), number);
        t.state = state;
        if let Some(x) = x {
            t.params
                .set(Param::from_internal("x", dist.clone(), x).unwrap())
                .unwrap();
        }
        t.params
            .set(Param::from_internal("y", dist, y).unwrap())
            .unwrap();
        t
    }

    #[test]
    fn orders_match_a_fresh_sort_as_trials_arrive() {
        let dist: Distribution = FloatDistribution::uniform(0.0, 10.0).unwrap().into();
        let params = [("x", &dist), ("y", &dist)];
        let mut rng = TrialRng::from_seed(7);
        let mut cache = Cache::default();
        let mut trials = Vec::new();
        for n in 0..60u64 {
            // Coarse values make ties; some trials lack x; a few are still running.
            let x = (rng.uniform() > 0.1).then(|| (rng.uniform() * 8.0).round());
            let state = if rng.uniform() < 0.15 {
                TrialState::Running
            } else {
                TrialState::Complete
            };
            trials.push(trial(n, state, x, (rng.uniform() * 5.0).round()));
            // Every other trial of the history, as a split would pick them.
            let group: Vec<&FrozenTrial> =
                trials.iter().filter(|t| t.number % 2 == n % 2).collect();
            let (mut obs, mut orders) = (Vec::new(), Vec::new());
            let rows = cache.observations(StudyId(1), &group, &params, &mut obs, &mut orders);
            let want_rows: Vec<&FrozenTrial> = group
                .iter()
                .copied()
                .filter(|t| t.params.get("x").is_some())
                .collect();
            assert_eq!(rows, want_rows.len());
            for (j, name) in ["x", "y"].iter().enumerate() {
                let value = |r: usize| want_rows[r].params[*name].as_f64().unwrap();
                let mut want: Vec<usize> = (0..rows).collect();
                want.sort_by(|&a, &b| value(a).total_cmp(&value(b)));
                assert_eq!(orders[j], want, "column {name} after trial {n}");
                for (r, t) in want_rows.iter().enumerate() {
                    assert_eq!(
                        obs[r * 2 + j].to_bits(),
                        t.params[*name].as_f64().unwrap().to_bits()
                    );
                }
            }
        }
    }
}
