//! `FrozenTrial`: the immutable record of a trial as storage holds it.

use super::{Param, Params, TrialState};
use crate::error::{Error, Result};
use crate::space::{Distribution, ParamValue};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// A storage-wide trial identifier (unique across studies in one storage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TrialId(pub u64);

impl std::fmt::Display for TrialId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "id {}", self.0)
    }
}

/// System-attribute key prefix under which constraint values are stored.
pub(crate) const CONSTRAINT_PREFIX: &str = "constraint:";

/// A snapshot of one trial: its parameters with their distributions, values, intermediate
/// values, times, attributes and state.
///
/// Fields are public so finished trials from elsewhere can be built and inserted with
/// `Study::add_trial` (which validates them); reading a trial never aliases later writes.
///
/// Serialized with `params` (name → value) and `distributions` (name → distribution) maps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "Repr", try_from = "Repr")]
pub struct FrozenTrial {
    /// Storage-wide id (ignored by `Study::add_trial`, which assigns a new one).
    pub id: TrialId,
    /// The trial's number within its study: 0, 1, 2, … dense, in creation order.
    pub number: u64,
    /// Current state.
    pub state: TrialState,
    /// Objective values, one per direction, when Complete (Pruned trials carry their last
    /// intermediate value when there is one).
    pub values: Option<Vec<f64>>,
    /// Parameters by name, each with its value and distribution: `params["lr"]` is a value,
    /// `params.distribution("lr")` its distribution.
    pub params: Params,
    /// Intermediate values by step, one value per objective.
    pub intermediate_values: BTreeMap<u64, Vec<f64>>,
    /// When the trial started running.
    pub datetime_start: Option<SystemTime>,
    /// When the trial finished.
    pub datetime_complete: Option<SystemTime>,
    /// The user's JSON attributes.
    pub user_attrs: BTreeMap<String, serde_json::Value>,
    /// ferrotune's own JSON attributes (constraints, fixed params of enqueued trials, sampler
    /// bookkeeping).
    pub system_attrs: BTreeMap<String, serde_json::Value>,
    /// Why the trial failed, when it did.
    pub fail_reason: Option<String>,
}

impl FrozenTrial {
    /// An empty Running trial, the starting point of every new trial.
    pub fn new_running(id: TrialId, number: u64) -> Self {
        FrozenTrial {
            id,
            number,
            state: TrialState::Running,
            values: None,
            params: Params::new(),
            intermediate_values: BTreeMap::new(),
            datetime_start: Some(SystemTime::now()),
            datetime_complete: None,
            user_attrs: BTreeMap::new(),
            system_attrs: BTreeMap::new(),
            fail_reason: None,
        }
    }

    /// A Complete trial with the given parameters and values, for `Study::add_trial`.
    pub fn completed(
        params: impl IntoIterator<Item = (String, Distribution, ParamValue)>,
        values: Vec<f64>,
    ) -> Self {
        let mut t = FrozenTrial::new_running(TrialId(0), 0);
        t.params = params
            .into_iter()
            .map(|(name, dist, value)| Param::new(&name, dist, value))
            .collect();
        t.state = TrialState::Complete;
        t.values = Some(values);
        t.datetime_complete = t.datetime_start;
        t
    }

    /// The single objective value (the first one for several objectives).
    pub fn value(&self) -> Option<f64> {
        self.values.as_ref().and_then(|v| v.first().copied())
    }

    /// A parameter's value.
    pub fn param(&self, name: &str) -> Option<&ParamValue> {
        self.params.get(name)
    }

    /// A parameter's distribution.
    pub fn distribution(&self, name: &str) -> Option<&Distribution> {
        self.params.distribution(name)
    }

    /// A parameter's internal value (its index for a categorical).
    pub fn internal_param(&self, name: &str) -> Option<f64> {
        self.params.param(name)?.internal().ok()
    }

    /// The largest step with an intermediate value.
    pub fn last_step(&self) -> Option<u64> {
        self.intermediate_values.keys().next_back().copied()
    }

    /// The first objective's intermediate value at `step`.
    pub fn intermediate(&self, step: u64) -> Option<f64> {
        self.intermediate_values
            .get(&step)
            .and_then(|v| v.first().copied())
    }

    /// Wall time from start to finish, once finished.
    pub fn duration(&self) -> Option<Duration> {
        let start = self.datetime_start?;
        self.datetime_complete?.duration_since(start).ok()
    }

    /// Constraint values by name (feasible when every value is ≤ 0).
    pub fn constraints(&self) -> impl Iterator<Item = (&str, f64)> {
        self.system_attrs
            .range(CONSTRAINT_PREFIX.to_owned()..)
            .take_while(|(k, _)| k.starts_with(CONSTRAINT_PREFIX))
            .filter_map(|(k, v)| Some((&k[CONSTRAINT_PREFIX.len()..], v.as_f64()?)))
    }

    /// Whether every constraint is satisfied (≤ 0), as Optuna 5.0 defines feasibility. A trial
    /// without constraints is feasible.
    pub fn is_feasible(&self) -> bool {
        self.constraints().all(|(_, v)| v <= 0.0)
    }

    /// The sum of positive constraint values: 0 when feasible, larger when further from it.
    pub fn constraint_violation(&self) -> f64 {
        self.constraints().map(|(_, v)| v.max(0.0)).sum()
    }

    /// Checks a record before it is inserted: parameters match their distributions, finished
    /// states carry consistent values, and nothing is NaN.
    pub fn validate(&self, n_objectives: usize) -> Result<()> {
        for p in self.params.as_slice() {
            p.internal()?;
        }
        match (self.state, &self.values) {
            (TrialState::Complete, None) => {
                return Err(Error::InvalidValues("a Complete trial needs values".into()))
            }
            (TrialState::Complete, Some(v)) => check_values(v, n_objectives)?,
            (TrialState::Pruned, Some(v)) if v.len() != n_objectives => {
                return Err(Error::InvalidValues(format!(
                    "a Pruned trial's values must have {n_objectives} entries, got {}",
                    v.len()
                )))
            }
            (TrialState::Fail | TrialState::Running | TrialState::Waiting, Some(_)) => {
                return Err(Error::InvalidValues(format!(
                    "a {} trial cannot carry values",
                    self.state
                )))
            }
            _ => {}
        }
        Ok(())
    }
}

/// `FrozenTrial`'s serialized form: parameters as two maps, as Optuna keeps them.
#[derive(Serialize, Deserialize)]
#[serde(rename = "FrozenTrial")]
struct Repr {
    id: TrialId,
    number: u64,
    state: TrialState,
    values: Option<Vec<f64>>,
    params: BTreeMap<String, ParamValue>,
    distributions: BTreeMap<String, Distribution>,
    intermediate_values: BTreeMap<u64, Vec<f64>>,
    datetime_start: Option<SystemTime>,
    datetime_complete: Option<SystemTime>,
    user_attrs: BTreeMap<String, serde_json::Value>,
    system_attrs: BTreeMap<String, serde_json::Value>,
    fail_reason: Option<String>,
}

impl From<FrozenTrial> for Repr {
    fn from(t: FrozenTrial) -> Repr {
        Repr {
            id: t.id,
            number: t.number,
            state: t.state,
            values: t.values,
            params: t
                .params
                .iter()
                .map(|(n, v)| (n.to_owned(), v.clone()))
                .collect(),
            distributions: t
                .params
                .distributions()
                .map(|(n, d)| (n.to_owned(), d.clone()))
                .collect(),
            intermediate_values: t.intermediate_values,
            datetime_start: t.datetime_start,
            datetime_complete: t.datetime_complete,
            user_attrs: t.user_attrs,
            system_attrs: t.system_attrs,
            fail_reason: t.fail_reason,
        }
    }
}

impl TryFrom<Repr> for FrozenTrial {
    type Error = Error;
    fn try_from(mut r: Repr) -> Result<FrozenTrial> {
        let mut params = Params::with_capacity(r.distributions.len());
        for (name, dist) in r.distributions {
            let value = r.params.remove(&name).ok_or_else(|| {
                Error::invalid_argument(
                    "trial",
                    format!("distribution `{name}` has no parameter value"),
                )
            })?;
            params.insert(Param::new(&name, dist, value));
        }
        if let Some(name) = r.params.keys().next() {
            return Err(Error::invalid_argument(
                "trial",
                format!("parameter `{name}` has no distribution"),
            ));
        }
        Ok(FrozenTrial {
            id: r.id,
            number: r.number,
            state: r.state,
            values: r.values,
            params,
            intermediate_values: r.intermediate_values,
            datetime_start: r.datetime_start,
            datetime_complete: r.datetime_complete,
            user_attrs: r.user_attrs,
            system_attrs: r.system_attrs,
            fail_reason: r.fail_reason,
        })
    }
}

/// Checks objective values: one per objective, none NaN (±∞ are allowed).
pub(crate) fn check_values(values: &[f64], n_objectives: usize) -> Result<()> {
    if values.len() != n_objectives {
        return Err(Error::InvalidValues(format!(
            "the study has {n_objectives} objective(s) but {} value(s) were given",
            values.len()
        )));
    }
    if let Some(i) = values.iter().position(|v| v.is_nan()) {
        return Err(Error::InvalidValues(format!(
            "objective value #{i} is NaN; return a number (±inf is allowed) or fail the trial"
        )));
    }
    Ok(())
}
