//! `StudyBuilder`: creates a study or reopens one, checking the stored configuration.

use super::{Direction, Heartbeat, RetryPolicy, StopSignal, Study, StudyInner};
use crate::error::{Error, Result};
use crate::pruner::{Pruner, PrunerSpec};
use crate::rng::{stable_hash, TrialRng};
use crate::sampler::{Sampler, SamplerSpec};
use crate::storage::{InMemoryStorage, Storage};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Study system attribute holding the [`StudyConfig`].
pub(crate) const CONFIG_ATTR: &str = "ferrotune:config";

/// What is stored with a study when it is created, so that any process reopening it rebuilds
/// exactly the same sampler and pruner with the same seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyConfig {
    /// The sampler.
    pub sampler: SamplerSpec,
    /// The pruner.
    pub pruner: PrunerSpec,
    /// The seed every random stream of the study is derived from.
    pub seed: u64,
    /// The ferrotune version that created the study.
    pub version: String,
}

impl StudyConfig {
    /// The configuration stored with a study, if it has one (studies created by ferrotune
    /// always do).
    pub fn of(study: &crate::storage::FrozenStudy) -> Option<StudyConfig> {
        study
            .system_attrs
            .get(CONFIG_ATTR)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

/// Builds a [`Study`]: a new one, or (with [`StudyBuilder::load_if_exists`]) an existing one
/// whose stored configuration must agree with every option given here.
#[derive(Default)]
#[must_use]
pub struct StudyBuilder {
    name: Option<String>,
    directions: Option<Vec<Direction>>,
    sampler: Option<SamplerSpec>,
    custom_sampler: Option<Arc<dyn Sampler>>,
    pruner: Option<PrunerSpec>,
    custom_pruner: Option<Arc<dyn Pruner>>,
    storage: Option<Arc<dyn Storage>>,
    seed: Option<u64>,
    max_trials: Option<u64>,
    load_if_exists: bool,
    load_only: bool,
    heartbeat: Option<Heartbeat>,
    retry: Option<RetryPolicy>,
}

impl StudyBuilder {
    /// The study name (unique in its storage). Without one, a random name is generated.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// One objective with this direction (minimize by default).
    pub fn direction(mut self, direction: Direction) -> Self {
        self.directions = Some(vec![direction]);
        self
    }
    /// Several objectives, one direction each.
    pub fn directions(mut self, directions: impl Into<Vec<Direction>>) -> Self {
        self.directions = Some(directions.into());
        self
    }
    /// The sampler (TPE with Optuna 5.0's settings by default).
    pub fn sampler(mut self, spec: SamplerSpec) -> Self {
        self.sampler = Some(spec);
        self
    }
    /// A sampler implemented outside ferrotune; `name` is stored so that reopening the study
    /// with another sampler is caught.
    pub fn custom_sampler(mut self, name: &str, sampler: Arc<dyn Sampler>) -> Self {
        self.sampler = Some(SamplerSpec::Custom {
            name: name.to_owned(),
        });
        self.custom_sampler = Some(sampler);
        self
    }
    /// The pruner (median for one objective, none for several, by default).
    pub fn pruner(mut self, spec: PrunerSpec) -> Self {
        self.pruner = Some(spec);
        self
    }
    /// A pruner implemented outside ferrotune.
    pub fn custom_pruner(mut self, name: &str, pruner: Arc<dyn Pruner>) -> Self {
        self.pruner = Some(PrunerSpec::Custom {
            name: name.to_owned(),
        });
        self.custom_pruner = Some(pruner);
        self
    }
    /// The storage (a fresh in-memory storage by default).
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = Some(storage);
        self
    }
    /// The study seed. Without one, a seed is generated and stored with the study.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// A study-wide cap on the number of trials, enforced atomically when trials are created,
    /// so several workers together stop at exactly this many.
    pub fn max_trials(mut self, n: u64) -> Self {
        self.max_trials = Some(n);
        self
    }
    /// Refresh running trials' heartbeats and reap the trials of dead workers (see
    /// [`Heartbeat`]). Off by default: without heartbeats a killed worker's trial stays
    /// Running.
    pub fn heartbeat(mut self, heartbeat: Heartbeat) -> Self {
        self.heartbeat = Some(heartbeat);
        self
    }
    /// Retry failed trials with the same parameters (see [`RetryPolicy`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }
    /// Reopen the study when one with this name exists, instead of failing.
    pub fn load_if_exists(mut self, yes: bool) -> Self {
        self.load_if_exists = yes;
        self
    }
    pub(crate) fn load_only(mut self) -> Self {
        self.load_only = true;
        self.load_if_exists = true;
        self
    }

    /// Creates or reopens the study.
    pub fn build(self) -> Result<Study> {
        let storage = self
            .storage
            .clone()
            .unwrap_or_else(|| Arc::new(InMemoryStorage::new()));
        let name = self.name.clone().unwrap_or_else(generated_name);
        if let Some(d) = &self.directions {
            if d.is_empty() {
                return Err(Error::invalid_argument(
                    "directions",
                    "give at least one direction",
                ));
            }
        }
        // Two workers may race to create the same study: the loser reopens it.
        for _ in 0..2 {
            match storage.study_by_name(&name) {
                Ok(existing) => {
                    if !self.load_if_exists {
                        return Err(Error::DuplicateStudy(name));
                    }
                    return self.open(storage, existing);
                }
                Err(Error::StudyNotFound(_)) if !self.load_only => {
                    match self.create(storage.clone(), &name) {
                        Err(Error::DuplicateStudy(_)) if self.load_if_exists => continue,
                        other => return other,
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Storage(format!(
            "study `{name}` was created and removed concurrently; try again"
        )))
    }

    fn create(&self, storage: Arc<dyn Storage>, name: &str) -> Result<Study> {
        let directions = self
            .directions
            .clone()
            .unwrap_or_else(|| vec![Direction::Minimize]);
        let pruner = self.pruner.clone().unwrap_or_else(|| {
            if directions.len() == 1 {
                PrunerSpec::median()
            } else {
                PrunerSpec::Nop
            }
        });
        let config = StudyConfig {
            sampler: self.sampler.clone().unwrap_or_default(),
            pruner,
            seed: self.seed.unwrap_or_else(generated_seed),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        // Build first so an invalid spec never leaves a study behind.
        let (sampler, pruner) = self.instantiate(&config)?;
        let mut attrs = BTreeMap::new();
        attrs.insert(CONFIG_ATTR.to_owned(), serde_json::to_value(&config)?);
        let id = storage.create_study(name, &directions, &attrs)?;
        tracing::info!(study = name, seed = config.seed, "created study");
        Ok(self.finish(
            storage,
            id,
            name.to_owned(),
            directions,
            config,
            sampler,
            pruner,
        ))
    }

    fn open(
        &self,
        storage: Arc<dyn Storage>,
        existing: crate::storage::FrozenStudy,
    ) -> Result<Study> {
        let conflict = |field: &'static str, stored: String, given: String| Error::ConfigConflict {
            study: existing.name.clone(),
            field,
            stored,
            given,
        };
        let config: StudyConfig = match existing.system_attrs.get(CONFIG_ATTR) {
            Some(v) => serde_json::from_value(v.clone())?,
            None => {
                return Err(Error::Storage(format!(
                    "study `{}` has no stored configuration (was it created by ferrotune?)",
                    existing.name
                )))
            }
        };
        if let Some(d) = &self.directions {
            if *d != existing.directions {
                return Err(conflict(
                    "directions",
                    format!("{:?}", existing.directions),
                    format!("{d:?}"),
                ));
            }
        }
        if let Some(s) = &self.sampler {
            if *s != config.sampler {
                return Err(conflict("sampler", to_json(&config.sampler), to_json(s)));
            }
        }
        if let Some(p) = &self.pruner {
            if *p != config.pruner {
                return Err(conflict("pruner", to_json(&config.pruner), to_json(p)));
            }
        }
        if let Some(seed) = self.seed {
            if seed != config.seed {
                return Err(conflict("seed", config.seed.to_string(), seed.to_string()));
            }
        }
        let (sampler, pruner) = self.instantiate(&config)?;
        Ok(self.finish(
            storage,
            existing.id,
            existing.name.clone(),
            existing.directions.clone(),
            config,
            sampler,
            pruner,
        ))
    }

    fn instantiate(&self, config: &StudyConfig) -> Result<(Arc<dyn Sampler>, Arc<dyn Pruner>)> {
        let sampler = match &self.custom_sampler {
            Some(s) => s.clone(),
            None => config.sampler.build()?,
        };
        let pruner = match &self.custom_pruner {
            Some(p) => p.clone(),
            None => config.pruner.build()?,
        };
        Ok((sampler, pruner))
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        storage: Arc<dyn Storage>,
        id: crate::storage::StudyId,
        name: String,
        directions: Vec<Direction>,
        config: StudyConfig,
        sampler: Arc<dyn Sampler>,
        pruner: Arc<dyn Pruner>,
    ) -> Study {
        Study {
            inner: Arc::new(StudyInner {
                storage,
                id,
                name,
                directions,
                config,
                sampler,
                pruner,
                max_trials: self.max_trials,
                stop: StopSignal::default(),
                specs: Default::default(),
                heartbeat: self.heartbeat,
                retry: self.retry,
            }),
        }
    }
}

fn to_json(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("<{e}>"))
}

/// Entropy for generated names and seeds: the clock, the process id and a process-wide
/// counter, mixed. (Generated once per study, then stored, so runs stay reproducible from the
/// stored seed.)
fn entropy() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let mixed = nanos
        ^ u64::from(std::process::id()).rotate_left(32)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    TrialRng::from_seed(mixed ^ stable_hash(b"ferrotune")).next_u64()
}

fn generated_seed() -> u64 {
    entropy()
}

fn generated_name() -> String {
    format!("study-{:016x}", entropy())
}
