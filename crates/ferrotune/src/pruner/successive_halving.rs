//! `SuccessiveHalvingPruner`: asynchronous successive halving (ASHA) in its stopping form.

use super::{Pruner, Resource, StudyDecision};
use crate::error::{Error, Result};
use crate::pareto::{crowding_distances, non_domination_ranks};
use crate::study::{Direction, StudyView};
use crate::trial::{FrozenTrial, TrialState};
use serde_json::Value;

/// Trial system-attribute prefix of the rung values: `completed_rung_0`, `completed_rung_1`, …
/// (Optuna's names, so a study's rungs read the same in both).
pub const RUNG_ATTR_PREFIX: &str = "completed_rung_";

/// Study system attribute holding the `min_resource` an "auto" pruner decided.
const MIN_RESOURCE_ATTR: &str = "successive_halving:min_resource";

/// Stops trials by asynchronous successive halving (Li, Jamieson, Rostamizadeh, Gonina,
/// Ben-tzur, Hardt, Recht & Talwalkar, "A system for massively parallel hyperparameter
/// tuning", MLSys 2020 — ASHA), in its stopping form: a trial runs on until it reaches a
/// rung, and continues past it only if it is among the best `1/η` of the trials that reached
/// that rung so far. Semantics and defaults are Optuna 5.0's `SuccessiveHalvingPruner`.
///
/// # Rungs
/// Rung `k` ends at step `min_resource · η^(min_early_stopping_rate + k)`. When a trial's
/// latest report is at or past the end of its current rung `k` (the number of
/// `completed_rung_<k>` system attributes it already has), the value of that report is
/// written to the trial as `completed_rung_<k>` and compared with the values every trial of
/// the study (in any state) recorded at rung `k`, its own included: with `n` such values,
/// the trial is promoted if its value is within the best `max(⌊n/η⌋, 1)` — ties with the
/// cut-off are promoted — and pruned otherwise. A promoted trial checks the next rung at
/// once, so a trial that reports rarely can climb several rungs with one report. A NaN value
/// at a rung prunes the trial. Because the rung values live in storage, every worker of the
/// study, in any process, sees the same rungs.
///
/// - `min_resource`: the steps of the first rung, or [`Resource::Auto`]: once a trial has
///   completed, `max(⌊largest last step of the Complete trials / 100⌋, 1)`, decided once and
///   stored with the study; nothing is pruned before then.
/// - `reduction_factor` (η ≥ 2, default 4): rungs grow by η and `1/η` of a rung is promoted.
/// - `min_early_stopping_rate` (`s`, default 0): skips the first `s` rungs, so the first
///   decision comes at `min_resource · η^s` steps (Hyperband's brackets differ only in `s`).
/// - `bootstrap_count` (default 0): a rung with at most this many values, the trial's own
///   included, prunes the trials reaching it (Optuna's rule); it needs a fixed
///   `min_resource`.
///
/// # Several objectives
/// Optuna's pruners handle one objective (optuna/optuna#3450 asks for more); this one ranks a
/// rung of several objectives the way NSGA-II selects survivors (Deb, Pratap, Agarwal &
/// Meyarivan, "A fast and elitist multiobjective genetic algorithm: NSGA-II", IEEE TEC 6(2),
/// 2002). Each trial reports one intermediate value per objective
/// (`Trial::report_values`); at a rung with `n` values the `k = max(⌊n/η⌋, 1)` best are
/// promoted, where best means: the lower non-domination rank first (rank 0 is the Pareto
/// front of the rung, rank 1 the front once rank 0 is removed, …); whole fronts are taken
/// while they fit in `k`; within the front that does not fit, the larger crowding distance
/// first (the less crowded, the more of the front's spread the trial keeps; see
/// [`crowding_distances`]). A trial whose crowding distance ties with the cut-off is promoted,
/// as ties are with one objective. A NaN in any objective prunes. With one objective the rule
/// is exactly the one above.
#[derive(Debug)]
pub struct SuccessiveHalvingPruner {
    min_resource: Resource,
    reduction_factor: u64,
    min_early_stopping_rate: u64,
    bootstrap_count: u64,
    decided_min_resource: StudyDecision,
}

impl Default for SuccessiveHalvingPruner {
    /// Optuna's defaults: `min_resource = "auto"`, η = 4, no early-stopping rate, no
    /// bootstrap.
    fn default() -> Self {
        SuccessiveHalvingPruner {
            min_resource: Resource::Auto,
            reduction_factor: 4,
            min_early_stopping_rate: 0,
            bootstrap_count: 0,
            decided_min_resource: StudyDecision::new(MIN_RESOURCE_ATTR),
        }
    }
}

impl SuccessiveHalvingPruner {
    /// A successive-halving pruner; `min_resource ≥ 1` when given, `reduction_factor ≥ 2`,
    /// and `bootstrap_count > 0` only with a given `min_resource`.
    pub fn new(
        min_resource: Resource,
        reduction_factor: u64,
        min_early_stopping_rate: u64,
        bootstrap_count: u64,
    ) -> Result<Self> {
        if min_resource == Resource::Steps(0) {
            return Err(Error::invalid_argument(
                "min_resource",
                "must be >= 1 or \"auto\", got 0",
            ));
        }
        if reduction_factor < 2 {
            return Err(Error::invalid_argument(
                "reduction_factor",
                format!("must be >= 2, got {reduction_factor}"),
            ));
        }
        if bootstrap_count > 0 && min_resource == Resource::Auto {
            return Err(Error::invalid_argument(
                "bootstrap_count",
                format!(
                    "bootstrap_count = {bootstrap_count} needs a fixed min_resource, but \
                     min_resource is \"auto\"; give min_resource or set bootstrap_count to 0"
                ),
            ));
        }
        Ok(SuccessiveHalvingPruner {
            min_resource,
            reduction_factor,
            min_early_stopping_rate,
            bootstrap_count,
            decided_min_resource: StudyDecision::new(MIN_RESOURCE_ATTR),
        })
    }

    /// The steps of the first rung for this study, or `None` while "auto" cannot decide yet.
    fn min_resource(&self, study: &StudyView<'_>) -> Result<Option<u64>> {
        match self.min_resource {
            Resource::Steps(m) => Ok(Some(m)),
            Resource::Auto => self.decided_min_resource.get_or_decide(study, || {
                Ok(study
                    .trials_in(&[TrialState::Complete])?
                    .filter_map(FrozenTrial::last_step)
                    .max()
                    .map(|last| (last / 100).max(1)))
            }),
        }
    }

    /// The step at which rung `rung` ends; `None` beyond `u64`.
    fn promotion_step(&self, min_resource: u64, rung: u64) -> Option<u64> {
        let exponent = u32::try_from(self.min_early_stopping_rate.checked_add(rung)?).ok()?;
        min_resource.checked_mul(self.reduction_factor.checked_pow(exponent)?)
    }
}

/// The system-attribute key of rung `rung`'s value.
pub(crate) fn rung_key(rung: u64) -> String {
    format!("{RUNG_ATTR_PREFIX}{rung}")
}

/// A rung value as stored: a number for one objective (as Optuna stores it), an array for
/// several; ±∞, which JSON numbers cannot hold, as the strings "Infinity" and "-Infinity"
/// (Python's spelling).
fn encode(values: &[f64]) -> Value {
    fn one(v: f64) -> Value {
        if v.is_finite() {
            Value::from(v)
        } else if v > 0.0 {
            Value::from("Infinity")
        } else {
            Value::from("-Infinity")
        }
    }
    match values {
        [v] => one(*v),
        _ => Value::Array(values.iter().map(|&v| one(v)).collect()),
    }
}

/// A stored rung value with `n` objectives; `None` for anything else (skipped).
fn decode(value: &Value, n: usize) -> Option<Vec<f64>> {
    fn one(v: &Value) -> Option<f64> {
        match v {
            Value::Number(x) => x.as_f64(),
            Value::String(s) if s == "Infinity" => Some(f64::INFINITY),
            Value::String(s) if s == "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        }
    }
    let values = match value {
        Value::Array(items) => items.iter().map(one).collect::<Option<Vec<f64>>>()?,
        v => vec![one(v)?],
    };
    (values.len() == n && values.iter().all(|v| !v.is_nan())).then_some(values)
}

/// Whether `competing[me]` is among the best `max(⌊n/η⌋, 1)` of the `n` `competing` values
/// under `directions`; see [`SuccessiveHalvingPruner`] for the rule.
pub(crate) fn promotable(
    competing: &[Vec<f64>],
    me: usize,
    reduction_factor: u64,
    directions: &[Direction],
) -> bool {
    let keep = ((competing.len() as u64 / reduction_factor).max(1)) as usize;
    if let [direction] = directions {
        // One objective: promoted iff fewer than `keep` values are strictly better, i.e. its
        // value is no worse than the keep-th best (Optuna's comparison with the sorted list).
        let own = direction.to_loss(competing[me][0]);
        let better = competing
            .iter()
            .filter(|c| direction.to_loss(c[0]) < own)
            .count();
        return better < keep;
    }
    let losses: Vec<Vec<f64>> = competing
        .iter()
        .map(|c| {
            c.iter()
                .zip(directions)
                .map(|(&x, d)| d.to_loss(x))
                .collect()
        })
        .collect();
    let refs: Vec<&[f64]> = losses.iter().map(Vec::as_slice).collect();
    let ranks = non_domination_ranks(&refs, refs.len());
    let rank = ranks[me];
    let ahead = ranks.iter().filter(|&&r| r < rank).count();
    if ahead >= keep {
        return false;
    }
    let front: Vec<usize> = (0..refs.len()).filter(|&i| ranks[i] == rank).collect();
    if ahead + front.len() <= keep {
        return true;
    }
    // The front that does not fit: the least crowded first, ties with the cut-off kept.
    let front_points: Vec<&[f64]> = front.iter().map(|&i| refs[i]).collect();
    let distances = crowding_distances(&front_points);
    let Some(position) = front.iter().position(|&i| i == me) else {
        return false;
    };
    let own_distance = distances[position];
    let less_crowded = distances.iter().filter(|&&d| d > own_distance).count();
    less_crowded < keep - ahead
}

impl Pruner for SuccessiveHalvingPruner {
    fn prune(&self, study: &StudyView<'_>, trial: &FrozenTrial) -> Result<bool> {
        let Some(step) = trial.last_step() else {
            return Ok(false);
        };
        let directions = study.directions();
        let Some(value) = trial.intermediate_values.get(&step) else {
            return Ok(false);
        };
        if value.len() != directions.len() {
            return Err(Error::InvalidValues(format!(
                "trial #{} reported {} value(s) at step {step}, but the study has {} \
                 objective(s)",
                trial.number,
                value.len(),
                directions.len()
            )));
        }
        let Some(min_resource) = self.min_resource(study)? else {
            return Ok(false);
        };
        // Nothing to decide before the first rung ends (and no history to read).
        match self.promotion_step(min_resource, 0) {
            Some(first) if step >= first => {}
            _ => return Ok(false),
        }
        let trials = study.trials()?;
        // The rungs this trial has completed, as storage knows them (the caller's copy of the
        // trial may predate the pruner's own writes).
        let stored = trials
            .binary_search_by_key(&trial.number, |t| t.number)
            .ok()
            .map(|i| &trials[i])
            .filter(|t| t.id == trial.id);
        let has = |key: &str| {
            trial.system_attrs.contains_key(key)
                || stored.is_some_and(|t| t.system_attrs.contains_key(key))
        };
        let mut rung = 0;
        while has(&rung_key(rung)) {
            rung += 1;
        }
        loop {
            match self.promotion_step(min_resource, rung) {
                Some(end) if step >= end => {}
                _ => return Ok(false),
            }
            if value.iter().any(|v| v.is_nan()) {
                return Ok(true);
            }
            let key = rung_key(rung);
            study
                .storage()
                .set_trial_system_attr(trial.id, &key, &encode(value))?;
            let mut competing: Vec<Vec<f64>> = trials
                .iter()
                .filter(|t| t.id != trial.id)
                .filter_map(|t| decode(t.system_attrs.get(&key)?, directions.len()))
                .collect();
            competing.push(value.clone());
            if competing.len() as u64 <= self.bootstrap_count {
                return Ok(true);
            }
            let me = competing.len() - 1;
            if !promotable(&competing, me, self.reduction_factor, directions) {
                return Ok(true);
            }
            rung += 1;
        }
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use crate::pruner::test_util::{running, study, study_with};
    use crate::study::Study;
    use crate::trial::Trial;

    fn sha(min: u64, eta: u64, rate: u64, bootstrap: u64) -> SuccessiveHalvingPruner {
        SuccessiveHalvingPruner::new(Resource::Steps(min), eta, rate, bootstrap)
            .expect("valid pruner")
    }

    /// The trial's stored rung values, in rung order.
    fn rungs(study: &Study, t: &Trial<'_>) -> Result<Vec<f64>> {
        let stored = study.storage().trial(t.frozen().id)?;
        Ok((0..)
            .map_while(|r| stored.system_attrs.get(&rung_key(r)))
            .filter_map(|v| decode(v, 1).map(|v| v[0]))
            .collect())
    }

    fn prunes(p: &SuccessiveHalvingPruner, study: &Study, t: &Trial<'_>) -> Result<bool> {
        p.prune(&study.view(), t.frozen())
    }

    #[test]
    fn constructor_validates() {
        let name = |r: Result<SuccessiveHalvingPruner>| match r {
            Err(Error::InvalidArgument { name, .. }) => name,
            other => panic!("expected InvalidArgument, got {other:?}"),
        };
        assert_eq!(
            name(SuccessiveHalvingPruner::new(Resource::Steps(0), 4, 0, 0)),
            "min_resource"
        );
        assert_eq!(
            name(SuccessiveHalvingPruner::new(Resource::Steps(1), 1, 0, 0)),
            "reduction_factor"
        );
        assert_eq!(
            name(SuccessiveHalvingPruner::new(Resource::Auto, 4, 0, 2)),
            "bootstrap_count"
        );
        assert!(SuccessiveHalvingPruner::new(Resource::Steps(1), 2, 3, 2).is_ok());
        let d = SuccessiveHalvingPruner::default();
        assert_eq!(
            (
                d.min_resource,
                d.reduction_factor,
                d.min_early_stopping_rate
            ),
            (Resource::Auto, 4, 0)
        );
    }

    #[test]
    fn promotion_steps_grow_by_eta() {
        let p = sha(2, 3, 1, 0);
        let steps: Vec<Option<u64>> = (0..4).map(|r| p.promotion_step(2, r)).collect();
        assert_eq!(steps, vec![Some(6), Some(18), Some(54), Some(162)]);
        assert_eq!(p.promotion_step(2, 100), None, "overflow is 'never'");
    }

    #[test]
    fn the_first_trial_at_a_rung_is_promoted_and_its_value_stored() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = sha(1, 2, 0, 0);
        // Steps 0 and 1: rung 0 ends at step 1.
        let t = running(&study, &[5.0])?;
        assert!(!prunes(&p, &study, &t)?, "before the first rung");
        assert!(rungs(&study, &t)?.is_empty());
        let t = running(&study, &[5.0, 4.0])?;
        assert!(!prunes(&p, &study, &t)?, "alone at rung 0");
        assert_eq!(rungs(&study, &t)?, vec![4.0]);
        Ok(())
    }

    #[test]
    fn a_trial_climbs_one_rung_per_report_and_several_at_once() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = sha(1, 2, 0, 0);
        // Rungs end at steps 1, 2, 4, 8.
        let mut t = running(&study, &[9.0, 8.0])?;
        assert!(!prunes(&p, &study, &t)?);
        assert_eq!(rungs(&study, &t)?, vec![8.0]);
        t.report(2, 7.0)?;
        assert!(!prunes(&p, &study, &t)?);
        assert_eq!(rungs(&study, &t)?, vec![8.0, 7.0]);
        t.report(3, 6.0)?;
        assert!(!prunes(&p, &study, &t)?, "step 3 is inside rung 2");
        assert_eq!(rungs(&study, &t)?.len(), 2);
        // Another trial reports rarely: one report at step 8 climbs rungs 0–3 with one value.
        let mut u = study.ask()?;
        u.report(0, 3.0)?;
        u.report(8, 1.0)?;
        assert!(!prunes(&p, &study, &u)?);
        assert_eq!(rungs(&study, &u)?, vec![1.0, 1.0, 1.0, 1.0]);
        // Asking again without a new report changes nothing.
        assert!(!prunes(&p, &study, &u)?);
        assert_eq!(rungs(&study, &u)?.len(), 4);
        Ok(())
    }

    #[test]
    fn only_the_top_fraction_is_promoted_and_ties_are_kept() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = sha(1, 2, 0, 0);
        // η 2, rung 0 ends at step 1. Alone: kept.
        assert!(!prunes(&p, &study, &running(&study, &[0.0, 1.0])?)?);
        assert!(
            prunes(&p, &study, &running(&study, &[0.0, 2.0])?)?,
            "2nd of 2, keep 1"
        );
        assert!(
            prunes(&p, &study, &running(&study, &[0.0, 3.0])?)?,
            "3rd of 3, keep 1"
        );
        // Now 4 values with a new one: keep 2 → 1.5 is 2nd of {1, 2, 3, 1.5}.
        assert!(!prunes(&p, &study, &running(&study, &[0.0, 1.5])?)?);
        // 5 values {1, 2, 3, 1.5, x}: keep 2; x = 1.5 ties with the 2nd best and is kept.
        assert!(!prunes(&p, &study, &running(&study, &[0.0, 1.5])?)?);
        // 6 values: keep 3 = {1, 1.5, 1.5}; 1.6 is 4th.
        assert!(prunes(&p, &study, &running(&study, &[0.0, 1.6])?)?);
        // Pruned and running trials' rung values count as much as any: 7 values, keep 3.
        assert!(!prunes(&p, &study, &running(&study, &[0.0, 0.5])?)?);
        Ok(())
    }

    #[test]
    fn the_value_at_the_latest_report_counts_not_the_best() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = sha(1, 2, 0, 0);
        assert!(!prunes(&p, &study, &running(&study, &[0.0, 1.0])?)?);
        // Its best value (0.1 at step 0) beats 1.0, but at rung 0 it reports 2.0.
        assert!(prunes(&p, &study, &running(&study, &[0.1, 2.0])?)?);
        Ok(())
    }

    #[test]
    fn maximize_keeps_the_largest() -> Result<()> {
        let study = study(Direction::Maximize)?;
        let p = sha(1, 2, 0, 0);
        assert!(!prunes(&p, &study, &running(&study, &[0.0, 1.0])?)?);
        assert!(prunes(&p, &study, &running(&study, &[0.0, 0.5])?)?);
        assert!(!prunes(&p, &study, &running(&study, &[0.0, 2.0])?)?);
        // {1, 0.5, 2, 1}: keep 2; 1 ties with the 2nd largest.
        assert!(!prunes(&p, &study, &running(&study, &[0.0, 1.0])?)?);
        Ok(())
    }

    #[test]
    fn nan_at_a_rung_prunes_and_is_not_stored() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = sha(1, 2, 0, 0);
        let t = running(&study, &[0.0, f64::NAN])?;
        assert!(prunes(&p, &study, &t)?);
        assert!(rungs(&study, &t)?.is_empty());
        // NaN before the first rung ends decides nothing yet.
        assert!(!prunes(&p, &study, &running(&study, &[f64::NAN])?)?);
        Ok(())
    }

    #[test]
    fn infinite_values_are_stored_and_compared() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = sha(1, 2, 0, 0);
        let t = running(&study, &[0.0, f64::INFINITY])?;
        assert!(!prunes(&p, &study, &t)?, "alone");
        assert_eq!(rungs(&study, &t)?, vec![f64::INFINITY]);
        assert!(!prunes(&p, &study, &running(&study, &[0.0, 5.0])?)?);
        assert!(prunes(
            &p,
            &study,
            &running(&study, &[0.0, f64::INFINITY])?
        )?);
        Ok(())
    }

    #[test]
    fn min_early_stopping_rate_delays_the_first_rung() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = sha(1, 2, 2, 0); // rungs end at 4, 8, …
        assert!(!prunes(
            &p,
            &study,
            &running(&study, &[0.0, 1.0, 1.0, 1.0, 1.0])?
        )?);
        let bad = running(&study, &[0.0, 9.0, 9.0, 9.0])?;
        assert!(!prunes(&p, &study, &bad)?, "step 3 < 4");
        assert!(prunes(
            &p,
            &study,
            &running(&study, &[0.0, 9.0, 9.0, 9.0, 9.0])?
        )?);
        Ok(())
    }

    #[test]
    fn bootstrap_prunes_until_the_rung_has_enough_values() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = sha(1, 2, 0, 2);
        // Optuna's rule: a rung holding at most bootstrap_count values (the new one included)
        // prunes the trial — even a good one — but its value is recorded.
        assert!(prunes(&p, &study, &running(&study, &[0.0, 1.0])?)?);
        assert!(prunes(&p, &study, &running(&study, &[0.0, 2.0])?)?);
        // Third value: {1, 2, 0.5}, keep max(3/2, 1) = 1 → 0.5 is promoted.
        assert!(!prunes(&p, &study, &running(&study, &[0.0, 0.5])?)?);
        // {1, 2, 0.5, 1.5}: keep 2 → 1.5 is 3rd.
        assert!(prunes(&p, &study, &running(&study, &[0.0, 1.5])?)?);
        Ok(())
    }

    #[test]
    fn auto_min_resource_waits_for_a_completed_trial_and_is_stored() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = SuccessiveHalvingPruner::new(Resource::Auto, 2, 0, 0)?;
        let t = running(&study, &[1.0; 300])?;
        assert!(!prunes(&p, &study, &t)?, "no completed trial yet");
        assert!(rungs(&study, &t)?.is_empty());
        // A trial completes with last step 299: min_resource = max(299 / 100, 1) = 2.
        let done = running(&study, &[1.0; 300])?;
        study.tell(done, 1.0)?;
        let t = running(&study, &[1.0, 1.0])?;
        assert!(!prunes(&p, &study, &t)?, "step 1 < 2");
        assert!(rungs(&study, &t)?.is_empty());
        let t = running(&study, &[1.0, 1.0, 1.0])?;
        assert!(!prunes(&p, &study, &t)?);
        assert_eq!(rungs(&study, &t)?.len(), 1, "rung 0 ends at step 2");
        let stored = study
            .storage()
            .study_system_attr(study.id(), MIN_RESOURCE_ATTR)?;
        assert_eq!(stored, Some(Value::from(2)));
        // Decided once: a later, longer completed trial does not move it, and a new pruner
        // (another worker) reads the stored value.
        let long = running(&study, &[1.0; 1000])?;
        study.tell(long, 1.0)?;
        let other = SuccessiveHalvingPruner::new(Resource::Auto, 2, 0, 0)?;
        assert_eq!(other.min_resource(&study.view())?, Some(2));
        assert_eq!(p.min_resource(&study.view())?, Some(2));
        Ok(())
    }

    #[test]
    fn small_completed_trials_give_min_resource_one() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let done = running(&study, &[1.0; 5])?;
        study.tell(done, 1.0)?;
        let p = SuccessiveHalvingPruner::default();
        assert_eq!(p.min_resource(&study.view())?, Some(1));
        Ok(())
    }

    #[test]
    fn rung_values_round_trip() {
        assert_eq!(encode(&[1.5]), Value::from(1.5));
        assert_eq!(encode(&[f64::INFINITY]), Value::from("Infinity"));
        assert_eq!(
            encode(&[1.0, f64::NEG_INFINITY]),
            serde_json::json!([1.0, "-Infinity"])
        );
        for v in [
            vec![1.5],
            vec![f64::INFINITY],
            vec![2.0, 3.0],
            vec![f64::NEG_INFINITY, 0.0],
        ] {
            assert_eq!(decode(&encode(&v), v.len()), Some(v));
        }
        assert_eq!(decode(&Value::from(1.0), 2), None, "wrong length");
        assert_eq!(decode(&Value::from("x"), 1), None);
        assert_eq!(decode(&Value::Null, 1), None);
    }

    #[test]
    fn one_objective_rule_matches_optunas_sorted_cut_off() {
        let dirs = [Direction::Minimize];
        let c = |vs: &[f64]| vs.iter().map(|&v| vec![v]).collect::<Vec<_>>();
        // 8 values, η 4: keep 2.
        let competing = c(&[5.0, 1.0, 3.0, 2.0, 8.0, 2.0, 9.0, 4.0]);
        assert!(promotable(&competing, 1, 4, &dirs));
        assert!(promotable(&competing, 3, 4, &dirs), "ties with the 2nd");
        assert!(promotable(&competing, 5, 4, &dirs), "ties with the 2nd");
        assert!(!promotable(&competing, 2, 4, &dirs));
        let max = [Direction::Maximize];
        assert!(promotable(&competing, 6, 4, &max));
        assert!(promotable(&competing, 4, 4, &max));
        assert!(!promotable(&competing, 0, 4, &max));
        // Fewer than η values: only the best (and its ties) go on.
        let few = c(&[2.0, 1.0, 1.0]);
        assert!(!promotable(&few, 0, 4, &dirs));
        assert!(promotable(&few, 1, 4, &dirs));
        assert!(promotable(&few, 2, 4, &dirs));
    }

    #[test]
    fn several_objectives_rank_by_front_then_crowding() {
        let dirs = [Direction::Minimize, Direction::Minimize];
        // A hand-made rung of 9 values, η 3 → keep 3.
        // Front 0: (1,5), (2,3), (3,2), (5,1); front 1: (3,4), (4,3); front 2: (5,5), (6,4),
        // (4,6).
        let rung: Vec<Vec<f64>> = [
            [1.0, 5.0],
            [2.0, 3.0],
            [3.0, 2.0],
            [5.0, 1.0],
            [3.0, 4.0],
            [4.0, 3.0],
            [5.0, 5.0],
            [6.0, 4.0],
            [4.0, 6.0],
        ]
        .iter()
        .map(|p| p.to_vec())
        .collect();
        let promoted: Vec<usize> = (0..rung.len())
            .filter(|&i| promotable(&rung, i, 3, &dirs))
            .collect();
        // Front 0 has 4 > 3 members: crowding within it. Extremes (1,5) and (5,1) are ∞;
        // (2,3): x-neighbours 1, 3 over range 4 → 0.5, y-neighbours 2, 5 over 4 → 0.75;
        // (3,2): x 2, 5 → 0.75, y 1, 3 → 0.5: both 1.25 — a tie at the cut-off, so both
        // stay (4 promoted, as ties with one objective can promote more than the fraction).
        assert_eq!(promoted, vec![0, 1, 2, 3]);
        // Make (2,3) less crowded by moving (3,2) to (4,2): (2,3) gets x 1, 4 → 0.75 and
        // y 2, 5 → 0.75 = 1.5; (4,2) gets x 2, 5 → 0.75, y 1, 3 → 0.5 = 1.25: cut.
        let mut moved = rung.clone();
        moved[2] = vec![4.0, 2.0];
        let promoted: Vec<usize> = (0..moved.len())
            .filter(|&i| promotable(&moved, i, 3, &dirs))
            .collect();
        assert_eq!(promoted, vec![0, 1, 3]);
        // With η 2 (keep 4 of 9) the whole first front fits, and nothing else.
        let promoted: Vec<usize> = (0..moved.len())
            .filter(|&i| promotable(&moved, i, 2, &dirs))
            .collect();
        assert_eq!(promoted, vec![0, 1, 2, 3]);
        // Keep 4 of 8 (η 2) with a front of 2 ahead of a front of 3: the second front is cut
        // by crowding; its extremes (2,6) and (6,2) go on, the crowded (4,4) does not.
        let rung: Vec<Vec<f64>> = [
            [1.0, 4.0],
            [4.0, 1.0],
            [2.0, 6.0],
            [4.0, 4.0],
            [6.0, 2.0],
            [7.0, 7.0],
            [8.0, 8.0],
            [9.0, 9.0],
        ]
        .iter()
        .map(|p| p.to_vec())
        .collect();
        let promoted: Vec<usize> = (0..rung.len())
            .filter(|&i| promotable(&rung, i, 2, &dirs))
            .collect();
        assert_eq!(promoted, vec![0, 1, 2, 4]);
    }

    #[test]
    fn several_objectives_respect_directions_and_match_one_objective() {
        // Maximizing the second objective mirrors it: (1, −5) minimized ≡ (1, 5) maximized.
        let dirs = [Direction::Minimize, Direction::Maximize];
        let rung: Vec<Vec<f64>> = vec![vec![1.0, 5.0], vec![2.0, 1.0], vec![3.0, 0.0]];
        // (1,5) dominates both others under these directions; keep 1 of 3 (η 3).
        assert!(promotable(&rung, 0, 3, &dirs));
        assert!(!promotable(&rung, 1, 3, &dirs));
        assert!(!promotable(&rung, 2, 3, &dirs));
        // The rule on identical objectives reduces to the one-objective rule.
        let dirs2 = [Direction::Minimize, Direction::Minimize];
        let values = [5.0, 1.0, 3.0, 2.0, 8.0, 2.0, 9.0, 4.0];
        let one: Vec<Vec<f64>> = values.iter().map(|&v| vec![v]).collect();
        let two: Vec<Vec<f64>> = values.iter().map(|&v| vec![v, v]).collect();
        for eta in 2..6 {
            for (i, value) in values.iter().enumerate() {
                assert_eq!(
                    promotable(&one, i, eta, &[Direction::Minimize]),
                    promotable(&two, i, eta, &dirs2),
                    "value {value} with η {eta}"
                );
            }
        }
    }

    #[test]
    fn several_objectives_prune_in_a_study() -> Result<()> {
        let study = study_with(vec![Direction::Minimize, Direction::Minimize])?;
        let p = sha(1, 2, 0, 0);
        let run = |values: [f64; 2]| -> Result<bool> {
            let mut t = study.ask()?;
            t.report_values(0, &[0.0, 0.0])?;
            t.report_values(1, &values)?;
            p.prune(&study.view(), t.frozen())
        };
        assert!(!run([1.0, 1.0])?, "alone");
        assert!(run([2.0, 2.0])?, "dominated, keep 1 of 2");
        // {(1,1), (2,2), (0,3), (3,0)}: keep 2 of front {(1,1), (0,3), (3,0)} whose extremes
        // are ∞ and (1,1) is interior.
        assert!(!run([0.0, 3.0])?);
        assert!(!run([3.0, 0.0])?);
        // A NaN in either objective prunes.
        assert!(run([f64::NAN, 0.0])?);
        Ok(())
    }

    #[test]
    fn rung_values_written_by_optuna_are_read() -> Result<()> {
        // A study whose rung values come from elsewhere (added trials, another tool): plain
        // JSON numbers under Optuna's keys.
        let study = study(Direction::Minimize)?;
        for v in [1.0, 2.0, 3.0] {
            let mut rec = FrozenTrial::completed(Vec::new(), vec![v]);
            rec.system_attrs.insert(rung_key(0), Value::from(v));
            study.add_trial(&rec)?;
        }
        let p = sha(1, 2, 0, 0);
        // {1, 2, 3, 1.5}: keep 2.
        assert!(!prunes(&p, &study, &running(&study, &[0.0, 1.5])?)?);
        assert!(prunes(&p, &study, &running(&study, &[0.0, 2.5])?)?);
        Ok(())
    }
}
