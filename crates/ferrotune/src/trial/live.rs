//! `Trial`: the live, define-by-run handle an objective uses.

use super::params::{find_spec, NameKey, Spec, SpecSnapshot};
use super::{FrozenTrial, Param, CONSTRAINT_PREFIX};
use crate::error::{Error, Result};
use crate::objective::TrialError;
use crate::rng::TrialRng;
use crate::schedule::checkpoint::{Checkpoint, CheckpointId, CheckpointWriter};
use crate::space::{
    CategoricalDistribution, Distribution, FloatDistribution, IntDistribution, ParamValue,
};
use crate::study::scheduled::{Verdict, CHECKPOINT_ATTR, REPLACED_BY_ATTR};
use crate::study::{Study, FIXED_PARAMS_ATTR};
use serde_json::Value;
use std::collections::BTreeMap;

/// A distribution that a trial can suggest from, with the Rust type its values come in.
pub trait Suggest {
    /// The suggested value's type.
    type Value;
    /// The general distribution.
    fn distribution(&self) -> Distribution;
    /// Converts the external value to `Self::Value`.
    fn convert(value: ParamValue) -> Result<Self::Value>;
}

impl Suggest for FloatDistribution {
    type Value = f64;
    fn distribution(&self) -> Distribution {
        Distribution::Float(self.clone())
    }
    fn convert(value: ParamValue) -> Result<f64> {
        value
            .as_f64()
            .ok_or_else(|| Error::Storage(format!("float parameter holds {value}")))
    }
}

impl Suggest for IntDistribution {
    type Value = i64;
    fn distribution(&self) -> Distribution {
        Distribution::Int(self.clone())
    }
    fn convert(value: ParamValue) -> Result<i64> {
        value
            .as_i64()
            .ok_or_else(|| Error::Storage(format!("int parameter holds {value}")))
    }
}

impl Suggest for CategoricalDistribution {
    type Value = ParamValue;
    fn distribution(&self) -> Distribution {
        Distribution::Categorical(self.clone())
    }
    fn convert(value: ParamValue) -> Result<ParamValue> {
        Ok(value)
    }
}

impl Suggest for Distribution {
    type Value = ParamValue;
    fn distribution(&self) -> Distribution {
        self.clone()
    }
    fn convert(value: ParamValue) -> Result<ParamValue> {
        Ok(value)
    }
}

/// A running trial. The objective suggests parameters through it (define-by-run: the space is
/// whatever the objective asks for, so conditional parameters are just `if`s), reports
/// intermediate values, and asks whether to stop early.
///
/// Suggesting the same name again returns the same value; suggesting it with a different
/// distribution is an error.
pub struct Trial<'s> {
    study: &'s Study,
    frozen: FrozenTrial,
    /// Values proposed jointly by the sampler, computed on the first suggest.
    relative: Option<BTreeMap<String, f64>>,
    relative_space: crate::sampler::SearchSpace,
    /// The study's shared parameter specs when the trial started.
    specs: SpecSnapshot,
    /// Whether a suggestion needed a spec the snapshot lacked (shared back when the trial ends).
    new_specs: bool,
    /// The study as the sampler sees it during this trial: its history is read once, on the
    /// first suggestion that needs it, and shared by the trial's later suggestions (pruning
    /// reads a fresh view, since it must see the other trials' latest reports).
    view: crate::study::StudyView<'s>,
    /// Whether the pruner's [`trial_filter`](crate::Pruner::trial_filter) has been applied
    /// to `view` (asked on the first sampled parameter, so trials whose parameters are all
    /// fixed never ask).
    view_filtered: bool,
    /// The checkpoint this trial resumes from (a paused trial's own, or a PBT parent's).
    resume: Option<Checkpoint>,
    /// Whether the trial still holds a reference on its PBT parent's checkpoint (until it
    /// saves one of its own).
    holds_parent: bool,
    /// Whether the scheduler already knows how the trial ends (it answered Complete, Stop,
    /// Pause or Exploit), so ending it needs no failure report.
    scheduler_knows_end: bool,
    /// Whether the scheduler paused the trial (the objective then returns
    /// [`TrialError::Paused`]).
    paused: bool,
    /// The last step the scheduler saw from this trial (or the step it resumed from):
    /// reports before the next decision step skip the stored state.
    consulted: Option<u64>,
}

impl<'s> Trial<'s> {
    pub(crate) fn new(study: &'s Study, mut frozen: FrozenTrial) -> Self {
        let shared = &study.inner().specs;
        frozen.params.reserve(shared.expected_len());
        Trial {
            study,
            frozen,
            relative: None,
            relative_space: Default::default(),
            specs: shared.snapshot(),
            new_specs: false,
            view: study.view(),
            view_filtered: false,
            resume: None,
            holds_parent: false,
            scheduler_knows_end: false,
            paused: false,
            consulted: None,
        }
    }

    pub(crate) fn set_resume(&mut self, checkpoint: Checkpoint, holds_parent: bool) {
        self.resume = Some(checkpoint);
        self.holds_parent = holds_parent;
    }

    /// The parent checkpoint this trial still holds a reference on, if any.
    pub(crate) fn held_parent(&self) -> Option<CheckpointId> {
        self.resume
            .as_ref()
            .filter(|_| self.holds_parent)
            .map(Checkpoint::id)
    }

    pub(crate) fn scheduler_knows_end(&self) -> bool {
        self.scheduler_knows_end
    }

    /// Whether the scheduler paused this trial at its last report.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The checkpoint to resume from, when a scheduler resumed this trial (ASHA's promotion,
    /// a synchronous rung) or started it from another trial's model (a PBT child). Load it
    /// and train on from step [`Checkpoint::step`]` + 1`; `None` means start from scratch.
    pub fn resume_from(&self) -> Option<&Checkpoint> {
        self.resume.as_ref()
    }

    /// The first step to train: one after the checkpoint's step when resuming, else 1.
    pub fn first_step(&self) -> u64 {
        self.resume.as_ref().map_or(1, |c| c.step() + 1)
    }

    /// The trial's number in its study.
    pub fn number(&self) -> u64 {
        self.frozen.number
    }

    /// The trial's record as it is now (parameters, reports and attributes so far).
    pub fn frozen(&self) -> &FrozenTrial {
        &self.frozen
    }

    /// The study this trial belongs to.
    pub fn study(&self) -> &'s Study {
        self.study
    }

    /// Suggests a value from any distribution: the typed entry for everything the helpers do
    /// not cover (`FloatDistribution::log_uniform(1e-5, 1e-1)?`, stepped ranges…).
    pub fn suggest<D: Suggest>(&mut self, name: &str, distribution: D) -> Result<D::Value> {
        let value = self.suggest_distribution(name, distribution.distribution())?;
        D::convert(value)
    }

    /// A float in `[low, high]`, uniformly.
    pub fn suggest_float(&mut self, name: &str, low: f64, high: f64) -> Result<f64> {
        self.suggest(name, FloatDistribution::uniform(low, high)?)
    }

    /// A float in `[low, high]`, log-uniformly (`low > 0`).
    pub fn suggest_float_log(&mut self, name: &str, low: f64, high: f64) -> Result<f64> {
        self.suggest(name, FloatDistribution::log_uniform(low, high)?)
    }

    /// An integer in `[low, high]`, uniformly.
    pub fn suggest_int(&mut self, name: &str, low: i64, high: i64) -> Result<i64> {
        self.suggest(name, IntDistribution::range(low, high)?)
    }

    /// An integer in `[low, high]`, log-uniformly (`low >= 1`).
    pub fn suggest_int_log(&mut self, name: &str, low: i64, high: i64) -> Result<i64> {
        self.suggest(name, IntDistribution::log_range(low, high)?)
    }

    /// One of `choices`, returned as the caller's own type.
    pub fn suggest_categorical<T>(&mut self, name: &str, choices: &[T]) -> Result<T>
    where
        T: Clone + Into<ParamValue>,
    {
        let dist = CategoricalDistribution::new(choices.iter().cloned().map(Into::into))?;
        let value = self.suggest_distribution(name, Distribution::Categorical(dist))?;
        // The recorded distribution equals the one just built: its choices are `choices`.
        let index = match self.frozen.params.distribution(name) {
            Some(Distribution::Categorical(dist)) => dist.index_of(&value),
            _ => None,
        }
        .ok_or_else(|| Error::Storage(format!("categorical `{name}` holds {value}")))?;
        Ok(choices[index].clone())
    }

    fn suggest_distribution(&mut self, name: &str, dist: Distribution) -> Result<ParamValue> {
        let key = NameKey::new(name);
        let index = match self.frozen.params.position_by(key) {
            Ok(i) => {
                let existing = &self.frozen.params.as_slice()[i];
                if *existing.distribution() != dist {
                    return Err(Error::IncompatibleDistribution {
                        name: name.to_owned(),
                        first: existing.distribution().to_string(),
                        second: dist.to_string(),
                    });
                }
                return Ok(existing.value().clone());
            }
            Err(i) => i,
        };
        let internal = self.propose(name, &dist)?;
        let value = dist.to_external(internal).map_err(|_| {
            Error::Storage(format!(
                "the sampler proposed {internal} for `{name}`, outside {dist} (a sampler bug)"
            ))
        })?;
        let spec = match find_spec(&self.specs, key, &dist) {
            Some(spec) => spec.clone(),
            None => {
                self.new_specs = true;
                Spec::new(name, dist)
            }
        };
        let param = Param::from_spec(spec, value);
        self.study
            .inner()
            .storage
            .set_trial_param(self.frozen.id, &param)?;
        let value = param.value().clone();
        self.frozen.params.insert_at(index, param);
        Ok(value)
    }

    /// The internal value for a new parameter: an enqueued fixed value, the single value of a
    /// one-point distribution, the sampler's joint proposal, or its independent one.
    fn propose(&mut self, name: &str, dist: &Distribution) -> Result<f64> {
        if let Some(fixed) = self
            .frozen
            .system_attrs
            .get(FIXED_PARAMS_ATTR)
            .and_then(|f| f.get(name))
        {
            let value: ParamValue = serde_json::from_value(fixed.clone())?;
            return dist.to_internal(&value).map_err(|_| {
                Error::invalid_argument(
                    "enqueue_trial",
                    format!(
                        "the enqueued value {value} of `{name}` is outside the suggested {dist}"
                    ),
                )
            });
        }
        if dist.is_single() {
            return Ok(dist.low_internal());
        }
        let inner = self.study.inner();
        if !self.view_filtered {
            // E.g. Hyperband: the sampler sees only the trials of this trial's bracket.
            if let Some(filter) = inner.pruner.trial_filter(&self.view, &self.frozen)? {
                self.view = self.view.filtered(filter);
            }
            self.view_filtered = true;
        }
        let view = &self.view;
        let seed = inner.config.seed;
        if self.relative.is_none() {
            self.relative_space = inner
                .sampler
                .infer_relative_search_space(view, &self.frozen)?;
            let proposed = if self.relative_space.is_empty() {
                BTreeMap::new()
            } else {
                let mut rng = TrialRng::for_trial(seed, self.frozen.number, "relative");
                inner
                    .sampler
                    .sample_relative(view, &self.frozen, &self.relative_space, &mut rng)?
            };
            self.relative = Some(proposed);
        }
        if let Some(&v) = self.relative.as_ref().and_then(|r| r.get(name)) {
            if self.relative_space.get(name) == Some(dist) && dist.contains(v) {
                return Ok(v);
            }
        }
        let mut rng = TrialRng::for_trial(seed, self.frozen.number, name);
        inner
            .sampler
            .sample_independent(view, &self.frozen, name, dist, &mut rng)
    }

    /// Reports the objective's intermediate value at `step` (an epoch, say), for pruning and
    /// for plots. A second report for the same step is ignored with a warning.
    pub fn report(&mut self, step: u64, value: f64) -> Result<()> {
        self.report_values(step, &[value])
    }

    /// Reports one intermediate value per objective at `step`.
    pub fn report_values(&mut self, step: u64, values: &[f64]) -> Result<()> {
        let n = self.study.directions().len();
        if values.len() != n {
            return Err(Error::InvalidValues(format!(
                "the study has {n} objective(s) but {} intermediate value(s) were reported",
                values.len()
            )));
        }
        if self.frozen.intermediate_values.contains_key(&step) {
            tracing::warn!(
                trial = self.frozen.number,
                step,
                "step was already reported; the new value is ignored"
            );
            return Ok(());
        }
        self.study
            .inner()
            .storage
            .set_trial_intermediate_value(self.frozen.id, step, values)?;
        self.frozen
            .intermediate_values
            .insert(step, values.to_vec());
        Ok(())
    }

    /// Reports the value at `step` and follows the study's scheduler: `Ok(())` means train
    /// on; an error means return it from the objective (with `?`): [`TrialError::Pruned`]
    /// when the trial stops here, [`TrialError::Paused`] when it was paused — `save` has then
    /// written its checkpoint, and a worker will resume it later from
    /// [`resume_from`](Self::resume_from). `save` is called only when the scheduler needs a
    /// checkpoint (a pause, or a PBT interval that others may copy); it writes the model's
    /// state with [`CheckpointWriter::write_bytes`] or as files in
    /// [`CheckpointWriter::dir`].
    ///
    /// Without a scheduler this is [`report`](Self::report) followed by the pruner's
    /// [`should_prune`](Self::should_prune), so one objective serves every study.
    pub fn report_scheduled<E: std::fmt::Display>(
        &mut self,
        step: u64,
        value: f64,
        save: impl FnOnce(&CheckpointWriter<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), TrialError> {
        self.report(step, value)?;
        let study = self.study;
        if !study.has_scheduler() {
            return if self.should_prune()? {
                Err(TrialError::Pruned)
            } else {
                Ok(())
            };
        }
        let after = self.consulted.unwrap_or(self.first_step() - 1);
        if !study.inner().decision_steps.any_in(after, step) {
            return Ok(());
        }
        self.consulted = Some(step);
        match study.scheduler_report(self.frozen.number, step, value)? {
            Verdict::Continue => Ok(()),
            Verdict::Complete => {
                self.scheduler_knows_end = true;
                Ok(())
            }
            Verdict::Stop => {
                self.scheduler_knows_end = true;
                Err(TrialError::Pruned)
            }
            Verdict::Pause => {
                self.save_checkpoint(step, save)?;
                self.scheduler_knows_end = true;
                self.paused = true;
                Err(TrialError::Paused)
            }
            Verdict::Checkpoint { pause } => {
                self.save_checkpoint(step, save)?;
                study.scheduler_saved(self.frozen.number, step)?;
                if pause {
                    self.scheduler_knows_end = true;
                    self.paused = true;
                    Err(TrialError::Paused)
                } else {
                    Ok(())
                }
            }
            Verdict::Exploit { winner, step } => {
                let child = study.spawn_child(&self.frozen, winner, step)?;
                self.frozen
                    .system_attrs
                    .insert(REPLACED_BY_ATTR.to_owned(), Value::from(child));
                self.scheduler_knows_end = true;
                Err(TrialError::Pruned)
            }
        }
    }

    fn save_checkpoint<E: std::fmt::Display>(
        &mut self,
        step: u64,
        save: impl FnOnce(&CheckpointWriter<'_>) -> std::result::Result<(), E>,
    ) -> Result<()> {
        let parent = self.held_parent();
        let id = self
            .study
            .save_checkpoint(&self.frozen, parent, step, save)?;
        self.holds_parent = false;
        self.frozen
            .system_attrs
            .insert(CHECKPOINT_ATTR.to_owned(), serde_json::to_value(id)?);
        Ok(())
    }

    /// Whether the study's pruner says to stop this trial now. When it says yes, return
    /// `Err(TrialError::Pruned)` from the objective.
    pub fn should_prune(&self) -> Result<bool> {
        let inner = self.study.inner();
        inner.pruner.prune(&self.study.view(), &self.frozen)
    }

    /// Records a constraint value; the trial is feasible when every constraint is ≤ 0 (Optuna
    /// 5.0's rule). A constraint is written once: a second value for the same name is ignored
    /// with a warning.
    pub fn set_constraint(&mut self, name: &str, value: f64) -> Result<()> {
        if value.is_nan() {
            return Err(Error::InvalidValues(format!(
                "constraint `{name}` is NaN; constraints must be numbers (<= 0 means satisfied)"
            )));
        }
        let key = format!("{CONSTRAINT_PREFIX}{name}");
        if self.frozen.system_attrs.contains_key(&key) {
            tracing::warn!(
                trial = self.frozen.number,
                constraint = name,
                "constraint already set; the new value is ignored"
            );
            return Ok(());
        }
        self.set_system_attr(&key, Value::from(value))
    }

    /// Sets a user attribute (any JSON-serializable value).
    pub fn set_user_attr(&mut self, key: &str, value: impl serde::Serialize) -> Result<()> {
        let value = serde_json::to_value(value)?;
        self.study
            .inner()
            .storage
            .set_trial_user_attr(self.frozen.id, key, &value)?;
        self.frozen.user_attrs.insert(key.to_owned(), value);
        Ok(())
    }

    pub(crate) fn set_system_attr(&mut self, key: &str, value: Value) -> Result<()> {
        self.study
            .inner()
            .storage
            .set_trial_system_attr(self.frozen.id, key, &value)?;
        self.frozen.system_attrs.insert(key.to_owned(), value);
        Ok(())
    }
}

impl Drop for Trial<'_> {
    fn drop(&mut self) {
        if self.new_specs {
            self.study.inner().specs.learn(&self.frozen.params);
        }
    }
}
