//! `StudyBuilder`: creates a study or reopens one, checking the stored configuration.

use super::{Direction, Heartbeat, RetryPolicy, StopSignal, Study, StudyInner};
use crate::error::{Error, Result};
use crate::pruner::{Pruner, PrunerSpec};
use crate::rng::{stable_hash, TrialRng};
use crate::sampler::{Sampler, SamplerSpec};
use crate::schedule::checkpoint::CheckpointStore;
use crate::schedule::SchedulerSpec;
use crate::storage::{InMemoryStorage, Storage};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
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
    /// The pause-and-resume scheduler, if any.
    #[serde(default, skip_serializing_if = "SchedulerSpec::is_none")]
    pub scheduler: SchedulerSpec,
    /// Where the study's checkpoints live (for a scheduler that pauses trials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<CheckpointConfig>,
}

/// Where a study's checkpoints live and how many unreferenced ones are kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointConfig {
    /// The directory every worker shares; the study's checkpoints are in a subdirectory named
    /// after it (see [`CheckpointStore`]).
    pub dir: PathBuf,
    /// How many checkpoints no trial needs any more are kept (the newest); older ones are
    /// deleted. Referenced checkpoints are never deleted.
    #[serde(default = "default_keep_checkpoints")]
    pub keep: usize,
}

/// Unreferenced checkpoints kept by default: enough to inspect the last few pauses or PBT
/// intervals without letting a long study fill the disk.
pub const DEFAULT_KEEP_CHECKPOINTS: usize = 10;

fn default_keep_checkpoints() -> usize {
    DEFAULT_KEEP_CHECKPOINTS
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
    scheduler: Option<SchedulerSpec>,
    checkpoint_dir: Option<PathBuf>,
    keep_checkpoints: Option<usize>,
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
    /// A pause-and-resume scheduler (ASHA with promotion, synchronous successive halving,
    /// Hyperband, BOHB, PBT, PB2). Trials then report through
    /// [`Trial::report_scheduled`](crate::Trial::report_scheduled) and the study's pruner is
    /// not used (it defaults to none).
    pub fn scheduler(mut self, spec: SchedulerSpec) -> Self {
        self.scheduler = Some(spec);
        self
    }
    /// The directory, shared by every worker, where checkpoints of paused trials are saved
    /// (`./ferrotune-checkpoints` by default, made absolute). It is stored with the study;
    /// giving another path when reopening it uses that path instead (a shared file system
    /// may be mounted elsewhere on another machine).
    pub fn checkpoint_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.checkpoint_dir = Some(dir.into());
        self
    }
    /// How many checkpoints no trial needs any more are kept (the newest;
    /// [`DEFAULT_KEEP_CHECKPOINTS`] by default). Referenced checkpoints are never deleted.
    pub fn keep_checkpoints(mut self, n: usize) -> Self {
        self.keep_checkpoints = Some(n);
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
        let scheduler = self.scheduler.clone().unwrap_or_default();
        let pruner = self.pruner.clone().unwrap_or_else(|| {
            if directions.len() == 1 && scheduler.is_none() {
                PrunerSpec::median()
            } else {
                PrunerSpec::Nop
            }
        });
        let sampler = match &self.sampler {
            Some(s) => s.clone(),
            None if scheduler.wants_bohb_sampler() => SamplerSpec::bohb(Default::default()),
            None => SamplerSpec::default(),
        };
        check_scheduler(&scheduler, &sampler, &pruner, directions.len())?;
        let checkpoints = if scheduler.is_none() && self.checkpoint_dir.is_none() {
            None
        } else {
            let dir = self
                .checkpoint_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("ferrotune-checkpoints"));
            let dir = std::path::absolute(&dir).map_err(|e| {
                Error::invalid_argument(
                    "checkpoint_dir",
                    format!("cannot make {} absolute: {e}", dir.display()),
                )
            })?;
            Some(CheckpointConfig {
                dir,
                keep: self.keep_checkpoints.unwrap_or(DEFAULT_KEEP_CHECKPOINTS),
            })
        };
        let config = StudyConfig {
            sampler,
            pruner,
            seed: self.seed.unwrap_or_else(generated_seed),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            scheduler,
            checkpoints,
        };
        // Build first so an invalid spec never leaves a study behind.
        let (sampler, pruner) = self.instantiate(&config)?;
        let mut attrs = BTreeMap::new();
        attrs.insert(CONFIG_ATTR.to_owned(), serde_json::to_value(&config)?);
        if let Some(state) = super::scheduled::SchedulerState::initial(
            &config.scheduler,
            directions.first().copied().unwrap_or(Direction::Minimize),
        )? {
            attrs.insert(
                super::scheduled::SCHEDULER_STATE_ATTR.to_owned(),
                serde_json::Value::String(serde_json::to_string(&state)?),
            );
        }
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
        if let Some(s) = &self.scheduler {
            if *s != config.scheduler {
                return Err(conflict(
                    "scheduler",
                    to_json(&config.scheduler),
                    to_json(s),
                ));
            }
        }
        let mut config = config;
        if let (Some(dir), Some(stored)) = (&self.checkpoint_dir, &mut config.checkpoints) {
            // The same shared directory may be mounted elsewhere on this machine.
            stored.dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        }
        if let (Some(keep), Some(stored)) = (self.keep_checkpoints, &mut config.checkpoints) {
            stored.keep = keep;
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
        let checkpoints = config
            .checkpoints
            .as_ref()
            .map(|c| (CheckpointStore::new(&c.dir, &name), c.keep));
        Study {
            inner: Arc::new(StudyInner {
                checkpoints,
                decision_steps: config.scheduler.decision_steps(),
                scheduler_cache: Default::default(),
                refs_cache: Default::default(),
                refs_warned: Default::default(),
                ids: Default::default(),
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

/// Refuses combinations a scheduler cannot run: several objectives, BOHB without its model,
/// a pruner next to a scheduler.
fn check_scheduler(
    scheduler: &SchedulerSpec,
    sampler: &SamplerSpec,
    pruner: &PrunerSpec,
    n_objectives: usize,
) -> Result<()> {
    if scheduler.is_none() {
        return Ok(());
    }
    scheduler.validate()?;
    if n_objectives != 1 {
        return Err(Error::invalid_argument(
            "scheduler",
            format!(
                "the {} scheduler ranks trials by one objective, but the study has \
                 {n_objectives}; use one direction (or a pruner)",
                scheduler.name()
            ),
        ));
    }
    if scheduler.wants_bohb_sampler() && !matches!(sampler, SamplerSpec::Bohb { .. }) {
        return Err(Error::invalid_argument(
            "sampler",
            "BOHB is Hyperband with BOHB's model: use the bohb sampler (or leave the sampler \
             unset), or the hyperband scheduler with this sampler",
        ));
    }
    if !matches!(pruner, PrunerSpec::Nop) {
        return Err(Error::invalid_argument(
            "pruner",
            format!(
                "the {} scheduler decides which trials stop; remove the pruner (it would \
                 never be asked)",
                scheduler.name()
            ),
        ));
    }
    Ok(())
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
