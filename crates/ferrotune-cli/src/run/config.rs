//! A run's configuration: the flags, plus what is stored with the study.
//!
//! What defines the study is stored with it the first time, so that a run on another machine,
//! or a `ferrotune worker` with no flags, does exactly the same thing:
//!
//! - by the library: directions, sampler, pruner, seed, and the scheduler with its checkpoint
//!   directory (see [`schedule`](super::schedule));
//! - by the runner: the search space (`ferrotune:space`), the command template
//!   (`ferrotune:command`), the metric names (`ferrotune:metrics`), and the run settings
//!   (`ferrotune:run`: `--trials`, `--retries`, `--trial-timeout`, `--kill-grace`,
//!   `--heartbeat`, `--heartbeat-grace`).
//!
//! The space, the command, the metrics, the directions, the sampler, the pruner, the seed and
//! the scheduler are first-writer-wins: giving another value later is an error that names the
//! stored one. (`--checkpoint-dir` and `--keep-checkpoints` are stored when the study is
//! created; given later they apply to that run only.)
//! The run settings are the study's current budget and limits: a later run may change them
//! (`--trials 200` extends a study of 100), and the latest values are stored.
//!
//! Options of one machine (`--jobs`, `--gpus`, `--cpus-per-trial`, `--timeout`, `--workdir`,
//! output) are never stored.

use super::duration::{format_duration, parse_duration};
use super::progress::Mode;
use super::schedule::ScheduleOptions;
use super::slots::{allocate, GpuShare, Slot, SlotRequest};
use super::template::CommandTemplate;
use crate::space_file::{SearchSpaceFile, SPACE_ATTR};
use crate::studies::{parse_pruner, parse_sampler};
use anyhow::{bail, Context};
use ferrotune::schedule::SchedulerSpec;
use ferrotune::study::StudyConfig;
use ferrotune::{
    Direction, Distribution, Heartbeat, ParamValue, PrunerSpec, SamplerSpec, Storage, Study,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Study system attribute: the command template, as a JSON list of words.
pub const COMMAND_ATTR: &str = "ferrotune:command";
/// Study system attribute: the metric names, one per objective, as a JSON list.
pub const METRICS_ATTR: &str = "ferrotune:metrics";
/// Study system attribute: the run settings ([`RunSettings`]).
pub const RUN_ATTR: &str = "ferrotune:run";

/// The metric name when none is given (one objective).
pub const DEFAULT_METRIC: &str = "value";
/// How long a stopped trial gets between SIGTERM and SIGKILL when none is given.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(10);
/// The default heartbeat (`--heartbeat`, `--heartbeat-grace`): how often a running trial's
/// heartbeat is written, and how old one may get before another runner fails the trial (its
/// runner died) and retries it under `--retries`.
pub const HEARTBEAT: Heartbeat = Heartbeat {
    interval: Duration::from_secs(10),
    grace_period: Duration::from_secs(60),
};

/// The options that define the study; stored with it (see the module docs).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct StudyOptions {
    /// Search-space file (.toml, .yaml, .json); stored with the study when it is created.
    #[arg(long)]
    pub space: Option<PathBuf>,
    /// One per objective, in the order of --metric: minimize or maximize.
    #[arg(long = "direction")]
    pub directions: Vec<Direction>,
    /// The reported metric each objective reads, in the order of --direction (`value` when
    /// there is one objective and none is given).
    #[arg(long = "metric")]
    pub metrics: Vec<String>,
    /// tpe (the default), random, qmc, halton, grid (every point of the space; every parameter
    /// must be categorical, int, or a float with a step), or a JSON spec.
    #[arg(long)]
    pub sampler: Option<String>,
    /// median (the default for one objective), successive_halving (asha), hyperband, wilcoxon,
    /// none, or a JSON spec (see `ferrotune pruners`).
    #[arg(long)]
    pub pruner: Option<String>,
    /// The study seed (generated and stored when not given).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Study-wide budget: run until the study holds N trials with an outcome (a failed trial
    /// that is retried does not count; its retry does). Running the command again, or on
    /// several machines, completes the study to N, not N more.
    #[arg(long)]
    pub trials: Option<u64>,
    /// Retry a failed trial (crash, non-zero exit, timeout, missing metric) up to N times with
    /// the same parameters.
    #[arg(long)]
    pub retries: Option<u32>,
    /// Stop a trial that runs longer than this (SIGTERM, then SIGKILL) and record it failed:
    /// 90s, 30m, 2h.
    #[arg(long, value_parser = parse_duration)]
    pub trial_timeout: Option<Duration>,
    /// How long a stopped trial (pruned, timed out, interrupted) gets between SIGTERM and
    /// SIGKILL [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub kill_grace: Option<Duration>,
    /// How often the runner writes a running trial's heartbeat [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub heartbeat: Option<Duration>,
    /// How old a running trial's heartbeat may get before a runner fails it as dead (its runner
    /// was killed or hung; retried under --retries) [default: 60s]; longer than --heartbeat.
    #[arg(long, value_parser = parse_duration)]
    pub heartbeat_grace: Option<Duration>,
    #[command(flatten)]
    pub schedule: ScheduleOptions,
    /// The program and its arguments, after `--`; `{name}` is a parameter's value, `{name?}`
    /// drops the argument when the parameter is inactive, `{{` and `}}` are braces.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The options of this machine's runner; never stored.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct LocalOptions {
    /// Trials at once [default: 1, or what --gpus holds].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// The GPUs to share between trials, as CUDA_VISIBLE_DEVICES names them: 0,1,2,3.
    #[arg(long, value_delimiter = ',')]
    pub gpus: Vec<String>,
    /// GPUs per trial: a whole number, or a fraction 1/k of one GPU (0.5 runs two trials on
    /// each GPU) [default: 1].
    #[arg(long)]
    pub gpus_per_trial: Option<GpuShare>,
    /// CPU cores per trial: each trial gets that many cores of its own (CPU affinity) and
    /// OMP/MKL/OPENBLAS/NUMEXPR_NUM_THREADS set to the count.
    #[arg(long)]
    pub cpus_per_trial: Option<usize>,
    /// Start no trial after this long (running trials finish): 30m, 2h.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Where trial directories go [default: ferrotune-runs/<study>].
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Run each trial inside its own directory (by default trials run in the current
    /// directory, so relative paths in the command work as typed).
    #[arg(long)]
    pub chdir: bool,
    /// Also show each trial's output, prefixed with `[trial N]`, on stderr.
    #[arg(long)]
    pub tee: bool,
    /// No progress bar and no line per trial: only failures and errors.
    #[arg(long)]
    pub quiet: bool,
    /// One JSON object per finished trial on stdout (and a summary object at the end).
    #[arg(long)]
    pub json: bool,
}

/// The run settings stored with a study (`ferrotune:run`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunSettings {
    /// The study-wide budget.
    pub trials: Option<u64>,
    /// Retries per failed configuration.
    pub retries: u32,
    /// Per-trial time limit, in seconds.
    pub trial_timeout_s: Option<f64>,
    /// SIGTERM-to-SIGKILL grace, in seconds.
    pub kill_grace_s: Option<f64>,
    /// Heartbeat interval, in seconds.
    pub heartbeat_s: Option<f64>,
    /// Heartbeat grace period, in seconds.
    pub heartbeat_grace_s: Option<f64>,
}

impl RunSettings {
    /// These settings with the given flags applied.
    fn with(mut self, o: &StudyOptions) -> RunSettings {
        if o.trials.is_some() {
            self.trials = o.trials;
        }
        if let Some(r) = o.retries {
            self.retries = r;
        }
        if let Some(t) = o.trial_timeout {
            self.trial_timeout_s = Some(t.as_secs_f64());
        }
        if let Some(g) = o.kill_grace {
            self.kill_grace_s = Some(g.as_secs_f64());
        }
        if let Some(h) = o.heartbeat {
            self.heartbeat_s = Some(h.as_secs_f64());
        }
        if let Some(g) = o.heartbeat_grace {
            self.heartbeat_grace_s = Some(g.as_secs_f64());
        }
        self
    }

    /// The heartbeat these settings give (the defaults where none is stored); an error when
    /// the grace period is not longer than the interval.
    pub fn heartbeat(&self) -> anyhow::Result<Heartbeat> {
        let secs = |s: Option<f64>, default: Duration| {
            s.and_then(|s| Duration::try_from_secs_f64(s).ok())
                .unwrap_or(default)
        };
        let interval = secs(self.heartbeat_s, HEARTBEAT.interval);
        let grace_period = secs(self.heartbeat_grace_s, HEARTBEAT.grace_period);
        if interval.is_zero() || grace_period <= interval {
            bail!(
                "--heartbeat-grace {} must be longer than --heartbeat {} (a live trial beats \
                 once per interval; give the grace at least three intervals)",
                format_duration(grace_period),
                format_duration(interval)
            );
        }
        Ok(Heartbeat {
            interval,
            grace_period,
        })
    }

    /// Names the first setting where `given` differs from these (stored) settings:
    /// "study `S` stores --trials 40, but this worker gives --trials 50".
    fn conflict(&self, given: &RunSettings, study: &str) -> String {
        let secs = |s: Option<f64>| {
            s.and_then(|s| Duration::try_from_secs_f64(s).ok())
                .map(format_duration)
        };
        let (flag, stored, wanted) = if self.trials != given.trials {
            (
                "--trials",
                self.trials.map(|n| n.to_string()),
                given.trials.map(|n| n.to_string()),
            )
        } else if self.retries != given.retries {
            (
                "--retries",
                Some(self.retries.to_string()),
                Some(given.retries.to_string()),
            )
        } else if self.trial_timeout_s != given.trial_timeout_s {
            (
                "--trial-timeout",
                secs(self.trial_timeout_s),
                secs(given.trial_timeout_s),
            )
        } else if self.heartbeat_s != given.heartbeat_s {
            (
                "--heartbeat",
                secs(self.heartbeat_s),
                secs(given.heartbeat_s),
            )
        } else if self.heartbeat_grace_s != given.heartbeat_grace_s {
            (
                "--heartbeat-grace",
                secs(self.heartbeat_grace_s),
                secs(given.heartbeat_grace_s),
            )
        } else {
            (
                "--kill-grace",
                secs(self.kill_grace_s),
                secs(given.kill_grace_s),
            )
        };
        let stored = stored.map_or_else(|| format!("no {flag} value"), |v| format!("{flag} {v}"));
        format!(
            "study `{study}` stores {stored}, but this worker gives {flag} {}",
            wanted.unwrap_or_default()
        )
    }

    /// Reads the settings stored with a study (defaults when none are).
    pub fn stored(storage: &dyn Storage, study: &Study) -> anyhow::Result<RunSettings> {
        match storage.study_system_attr(study.id(), RUN_ATTR)? {
            Some(v) => serde_json::from_value(v)
                .with_context(|| format!("study `{}`: invalid {RUN_ATTR}", study.name())),
            None => Ok(RunSettings::default()),
        }
    }
}

/// Everything one run needs, resolved from flags and the study's stored values. A `worker`
/// builds the same from the stored values alone.
#[derive(Debug)]
pub struct RunConfig {
    /// The study's name.
    pub study: String,
    /// The search space.
    pub space: SearchSpaceFile,
    /// The command template.
    pub command: CommandTemplate,
    /// The metric of each objective.
    pub metrics: Vec<String>,
    /// The direction of each objective.
    pub directions: Vec<Direction>,
    /// Each parameter's environment variable.
    pub env_names: Vec<(String, String)>,
    /// The study-wide budget (`None`: until stopped).
    pub trials: Option<u64>,
    /// Retries per failed configuration.
    pub retries: u32,
    /// Per-trial time limit.
    pub trial_timeout: Option<Duration>,
    /// SIGTERM-to-SIGKILL grace.
    pub kill_grace: Duration,
    /// Heartbeats of running trials.
    pub heartbeat: Heartbeat,
    /// One per concurrent trial.
    pub slots: Vec<Slot>,
    /// Why there are fewer slots than --jobs.
    pub slots_note: Option<String>,
    /// The directory trial directories go in (absolute).
    pub workdir: PathBuf,
    /// Run trials inside their directories.
    pub chdir: bool,
    /// No new trial after this long.
    pub timeout: Option<Duration>,
    /// How progress is shown.
    pub mode: Mode,
    /// Show trial output live.
    pub tee: bool,
    /// The study's pause-and-resume scheduler ([`SchedulerSpec::None`] without one).
    pub scheduler: SchedulerSpec,
    /// `--checkpoint-dir` given to this run (absolute): replaces the stored directory.
    pub checkpoint_dir: Option<PathBuf>,
    /// `--keep-checkpoints` given to this run.
    pub keep_checkpoints: Option<usize>,
}

/// Who resolves a configuration, and so what it may change in the study.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `ferrotune run`: creates a missing study, stores what is not stored yet, and stores
    /// new run settings (`--trials 200` extends the budget).
    Run,
    /// `ferrotune worker`: runs the study as stored. The study must exist and hold a command
    /// (it was made by `ferrotune run`); study flags are only checked against the stored
    /// values, and the run settings are never changed.
    Worker,
}

/// Resolves the configuration: creates the study when it is missing (which needs --space,
/// --direction and the command), or checks the flags against what it stores; stores what is
/// not stored yet. A [`Role::Worker`] creates and changes nothing (see [`Role`]). Returns the
/// configuration and the study (without a trial cap; the runner sets its own).
pub fn resolve(
    name: &str,
    storage: &Arc<dyn Storage>,
    so: &StudyOptions,
    lo: &LocalOptions,
    role: Role,
) -> anyhow::Result<(RunConfig, Study)> {
    let file_space = so.space.as_deref().map(SearchSpaceFile::load).transpose()?;
    let scheduler = so.schedule.spec()?;
    let pruner = so.pruner.as_deref().map(parse_pruner).transpose()?;
    let given_command = (!so.command.is_empty())
        .then(|| CommandTemplate::parse(&so.command))
        .transpose()?;
    for m in &so.metrics {
        check_metric_name(m)?;
    }
    let counts_differ = so.metrics.len() != so.directions.len();
    if counts_differ
        && (so.metrics.len() > 1 || (!so.metrics.is_empty() && !so.directions.is_empty()))
    {
        bail!(
            "{} --metric but {} --direction: give one --direction per --metric, in the same order",
            so.metrics.len(),
            so.directions.len()
        );
    }
    let existing = match storage.study_by_name(name) {
        Ok(s) => Some(s),
        Err(ferrotune::Error::StudyNotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if role == Role::Worker {
        match &existing {
            None => bail!(
                "study `{name}` does not exist in this storage; a worker runs a study that \
                 `ferrotune run` stored. Create it once, from any machine, with\n  {}",
                create_hint(name, so, false, false)
            ),
            Some(s) if !s.system_attrs.contains_key(COMMAND_ATTR) => bail!(
                "study `{name}` was not created by `ferrotune run`: it has no stored command for \
                 workers to run. Store one (and the search space, if the study has none) with\n  \
                 {}",
                create_hint(name, so, true, s.system_attrs.contains_key(SPACE_ATTR))
            ),
            Some(_) => {}
        }
    }
    let stored_space = existing
        .as_ref()
        .and_then(|s| s.system_attrs.get(SPACE_ATTR))
        .map(SearchSpaceFile::from_json)
        .transpose()
        .with_context(|| format!("study `{name}`"))?;

    if existing.is_none() {
        // Everything is checked before the study is created, so a mistake leaves nothing.
        let Some(space) = &file_space else {
            bail!("study `{name}` does not exist; to create it, pass --space FILE, --direction and the command after --");
        };
        if so.directions.is_empty() {
            bail!(
                "study `{name}` does not exist; to create it, say which way each objective goes: \
                 --direction minimize or --direction maximize"
            );
        }
        let Some(command) = &given_command else {
            bail!("study `{name}` does not exist; give the program to run after `--`");
        };
        let metrics = default_metrics(&so.metrics, so.directions.len())?;
        if metrics.len() != so.directions.len() {
            bail!(
                "{} metric(s) but {} --direction: give one --direction per --metric",
                metrics.len(),
                so.directions.len()
            );
        }
        command.check(space)?;
        space.env_var_names().map_err(anyhow::Error::msg)?;
    }

    if existing.is_none() {
        RunSettings::default().with(so).heartbeat()?;
    }
    let stored_config = existing.as_ref().and_then(StudyConfig::of);
    let scheduled = check_schedule(
        name,
        so,
        scheduler.as_ref(),
        pruner.as_ref(),
        stored_config.as_ref(),
    )?;
    let checkpoint_dir = so
        .schedule
        .checkpoint_dir
        .as_ref()
        .map(|d| {
            std::path::absolute(d).with_context(|| format!("--checkpoint-dir {}", d.display()))
        })
        .transpose()?;

    let space_for_grid = stored_space.as_ref().or(file_space.as_ref());
    let mut builder = Study::builder()
        .storage(storage.clone())
        .name(name)
        .load_if_exists(true);
    if !so.directions.is_empty() {
        builder = builder.directions(so.directions.clone());
    }
    if let Some(s) = &so.sampler {
        builder = builder.sampler(sampler_spec(s, space_for_grid)?);
    }
    if let Some(p) = pruner {
        builder = builder.pruner(p);
    }
    if let Some(seed) = so.seed {
        builder = builder.seed(seed);
    }
    if let Some(spec) = scheduler {
        builder = builder.scheduler(spec);
    }
    match &checkpoint_dir {
        Some(dir) => builder = builder.checkpoint_dir(dir),
        None if existing.is_none() && scheduled => {
            let root = lo.workdir.clone().unwrap_or_else(|| PathBuf::from("."));
            let dir = root.join("ferrotune-checkpoints");
            let dir = std::path::absolute(&dir)
                .with_context(|| format!("checkpoint directory {}", dir.display()))?;
            builder = builder.checkpoint_dir(dir);
        }
        None => {}
    }
    if let Some(keep) = so.schedule.keep_checkpoints {
        builder = builder.keep_checkpoints(keep);
    }
    let study = builder.build()?;
    let directions = study.directions().to_vec();

    let given_space = file_space.zip(so.space.as_ref().map(|p| p.display().to_string()));
    let space = crate::ask_tell::study_space(&**storage, &study, given_space)?;

    let command = match first_writer_wins(
        &**storage,
        &study,
        COMMAND_ATTR,
        given_command
            .as_ref()
            .map(|c| Value::from(c.words().to_vec())),
    )? {
        Stored::Agrees(v) => command_of(&v, &study)?,
        Stored::Conflict { stored, .. } => {
            let stored = command_of(&stored, &study)?;
            bail!(
                "study `{}` runs the command `{stored}`, but this run gives `{}`; drop the \
                 command after -- to run the stored one, or use a new study",
                study.name(),
                given_command.map(|c| c.to_string()).unwrap_or_default()
            );
        }
        Stored::Neither => bail!(
            "study `{}` has no stored command; give the program to run after `--`",
            study.name()
        ),
    };
    let wanted_metrics = if so.metrics.is_empty() {
        None
    } else {
        Some(so.metrics.clone())
    };
    let metrics = match first_writer_wins(
        &**storage,
        &study,
        METRICS_ATTR,
        Some(Value::from(wanted_metrics.clone().map_or_else(
            || default_metrics(&[], directions.len()),
            Ok,
        )?)),
    )? {
        Stored::Agrees(v) => metrics_of(&v, &study)?,
        Stored::Conflict { stored, .. } if wanted_metrics.is_none() => metrics_of(&stored, &study)?,
        Stored::Conflict { stored, .. } => bail!(
            "study `{}` reads the metric(s) {}, but this run gives --metric {}; drop --metric to \
             use the stored ones, or use a new study",
            study.name(),
            metrics_of(&stored, &study)?.join(", "),
            so.metrics.join(", ")
        ),
        Stored::Neither => bail!("study `{}` has no metric names stored", study.name()),
    };
    if metrics.len() != directions.len() {
        bail!(
            "study `{}` has {} objective(s) ({}) but {} metric(s) ({}); give one --metric per \
             objective",
            study.name(),
            directions.len(),
            directions
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            metrics.len(),
            metrics.join(", ")
        );
    }
    command.check(&space)?;
    let env_names = space
        .env_var_names()
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .map(|(p, v)| (p.to_owned(), v))
        .collect();

    let stored_settings = RunSettings::stored(&**storage, &study)?;
    let settings = stored_settings.clone().with(so);
    if settings != stored_settings {
        if role == Role::Worker {
            bail!(
                "{}; a worker runs the study as stored: drop the flag, or change the study \
                 with `ferrotune run --study {} --create-only` and the new value",
                stored_settings.conflict(&settings, study.name()),
                crate::launch::shell_quote(study.name())
            );
        }
        storage.set_study_system_attr(study.id(), RUN_ATTR, &serde_json::to_value(&settings)?)?;
    }
    let seconds = |s: Option<f64>| s.and_then(|s| Duration::try_from_secs_f64(s).ok());

    let jobs = lo
        .jobs
        .unwrap_or(if lo.gpus.is_empty() { 1 } else { usize::MAX });
    let allocation = allocate(&SlotRequest {
        jobs,
        gpus: lo.gpus.iter().map(|g| g.trim().to_owned()).collect(),
        gpu_share: lo.gpus_per_trial,
        cpus: if lo.cpus_per_trial.is_some() {
            available_cpus()?
        } else {
            Vec::new()
        },
        cpus_per_trial: lo.cpus_per_trial,
    })?;
    let workdir = lo
        .workdir
        .clone()
        .unwrap_or_else(|| PathBuf::from("ferrotune-runs").join(path_safe(name)));
    let workdir = std::path::absolute(&workdir)
        .with_context(|| format!("work directory {}", workdir.display()))?;

    let config = RunConfig {
        study: study.name().to_owned(),
        space,
        command,
        metrics,
        directions,
        env_names,
        trials: settings.trials,
        retries: settings.retries,
        trial_timeout: seconds(settings.trial_timeout_s),
        kill_grace: seconds(settings.kill_grace_s).unwrap_or(DEFAULT_KILL_GRACE),
        heartbeat: settings.heartbeat()?,
        slots: allocation.slots,
        slots_note: (lo.jobs.is_some())
            .then_some(allocation.limited_by)
            .flatten(),
        workdir,
        chdir: lo.chdir,
        timeout: lo.timeout,
        mode: Mode::choose(lo.json, lo.quiet),
        tee: lo.tee,
        scheduler: study.config().scheduler.clone(),
        checkpoint_dir,
        keep_checkpoints: so.schedule.keep_checkpoints,
    };
    Ok((config, study))
}

/// Checks the scheduler flags against `--pruner`, the stored study and each other; returns
/// whether the study runs (or will run) a scheduler.
fn check_schedule(
    name: &str,
    so: &StudyOptions,
    given: Option<&SchedulerSpec>,
    pruner: Option<&PrunerSpec>,
    stored: Option<&StudyConfig>,
) -> anyhow::Result<bool> {
    let json = |s: &SchedulerSpec| serde_json::to_string(s).unwrap_or_else(|e| format!("<{e}>"));
    if let (Some(given), Some(stored)) = (given, stored) {
        if *given != stored.scheduler {
            if stored.scheduler.is_none() {
                bail!(
                    "study `{name}` was created without a scheduler, but this run gives {}; a \
                     study's scheduler cannot change: drop the scheduler flags, or use a new study",
                    json(given)
                );
            }
            bail!(
                "study `{name}` runs the scheduler {}, but this run gives {}; drop the scheduler \
                 flags to run the stored one, or use a new study",
                json(&stored.scheduler),
                json(given)
            );
        }
    }
    let scheduler = given.or(stored.map(|c| &c.scheduler));
    let scheduled = scheduler.is_some_and(|s| !s.is_none());
    if let (Some(s), Some(p)) = (scheduler.filter(|_| scheduled), pruner) {
        if *p != PrunerSpec::Nop {
            bail!(
                "--pruner {} cannot be combined with a scheduler: the {} scheduler decides which \
                 trials stop, pause and resume, so a scheduled study has no pruner; drop \
                 --pruner (successive halving and Hyperband that only stop trials are --pruner \
                 asha and --pruner hyperband, without --scheduler)",
                so.pruner.as_deref().unwrap_or_default(),
                s.name()
            );
        }
    }
    if !scheduled
        && (so.schedule.checkpoint_dir.is_some() || so.schedule.keep_checkpoints.is_some())
    {
        bail!(
            "--checkpoint-dir and --keep-checkpoints are for a study with a scheduler; add \
             --scheduler asha|sha|hyperband|bohb|pbt|pb2, or drop them"
        );
    }
    if scheduled && stored.is_none() && so.directions.len() > 1 {
        bail!(
            "a scheduler ranks trials by one objective, but this run gives {} --direction; use \
             one --direction and --metric (or a pruner without --scheduler)",
            so.directions.len()
        );
    }
    Ok(scheduled)
}

/// The `ferrotune run … --create-only` command that makes a study workers can run, with the
/// flags this command was given filled in; for an existing study (`exists`), without the
/// directions it stores already, and without `--space` when it stores a space (`has_space`).
fn create_hint(name: &str, so: &StudyOptions, exists: bool, has_space: bool) -> String {
    let q = crate::launch::shell_quote;
    let mut words = vec![
        "ferrotune run --study".to_owned(),
        q(name),
        "--storage URL".to_owned(),
    ];
    match &so.space {
        Some(p) => words.push(format!("--space {}", q(&p.display().to_string()))),
        None if !has_space => words.push("--space FILE".to_owned()),
        None => {}
    }
    if so.directions.is_empty() && !exists {
        words.push("--direction minimize".to_owned());
    }
    for d in &so.directions {
        words.push(format!("--direction {}", d.as_str()));
    }
    for m in &so.metrics {
        words.push(format!("--metric {}", q(m)));
    }
    words.push(
        so.trials
            .map_or_else(|| "--trials N".to_owned(), |n| format!("--trials {n}")),
    );
    words.push("--create-only --".to_owned());
    if so.command.is_empty() {
        words.push("PROGRAM ARGS…".to_owned());
    } else {
        words.extend(so.command.iter().map(|w| q(w)));
    }
    words.join(" ")
}

/// How a given value compares with the stored one.
enum Stored {
    /// The stored value (the given one was stored, or matches, or none was given).
    Agrees(Value),
    /// Another value is stored.
    Conflict {
        /// The stored value.
        stored: Value,
    },
    /// Nothing stored and nothing given.
    Neither,
}

/// First-writer-wins: stores `given` when nothing is stored (two runners racing both end up
/// with the winner's value), then compares.
fn first_writer_wins(
    storage: &dyn Storage,
    study: &Study,
    key: &str,
    given: Option<Value>,
) -> anyhow::Result<Stored> {
    let stored = match (storage.study_system_attr(study.id(), key)?, &given) {
        (Some(v), _) => v,
        (None, Some(g)) => storage.set_study_system_attr_if_absent(study.id(), key, g)?,
        (None, None) => return Ok(Stored::Neither),
    };
    Ok(match given {
        Some(g) if g != stored => Stored::Conflict { stored },
        _ => Stored::Agrees(stored),
    })
}

fn command_of(v: &Value, study: &Study) -> anyhow::Result<CommandTemplate> {
    let words: Vec<String> = serde_json::from_value(v.clone())
        .with_context(|| format!("study `{}`: invalid stored {COMMAND_ATTR}", study.name()))?;
    CommandTemplate::parse(&words)
        .with_context(|| format!("study `{}`: the stored command", study.name()))
}

fn metrics_of(v: &Value, study: &Study) -> anyhow::Result<Vec<String>> {
    serde_json::from_value(v.clone())
        .with_context(|| format!("study `{}`: invalid stored {METRICS_ATTR}", study.name()))
}

/// The metric names: the given ones, or `value` for a single objective.
fn default_metrics(given: &[String], objectives: usize) -> anyhow::Result<Vec<String>> {
    match (given.is_empty(), objectives) {
        (false, _) => Ok(given.to_vec()),
        (true, 1) => Ok(vec![DEFAULT_METRIC.to_owned()]),
        (true, n) => bail!(
            "the study has {n} objectives: name the metric each one reads with --metric, once \
             per --direction and in the same order"
        ),
    }
}

/// A metric must be writable as `name=value` on a report line.
fn check_metric_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name == "step" || name.contains(|c: char| c.is_whitespace() || c == '=') {
        bail!(
            "--metric `{name}`: a metric name must be non-empty, not `step`, and free of spaces \
             and `=` (it is written `ferrotune: {name}=0.42`)"
        );
    }
    Ok(())
}

/// `--sampler`: `grid` is built from the search space; everything else as `parse_sampler`.
fn sampler_spec(s: &str, space: Option<&SearchSpaceFile>) -> anyhow::Result<SamplerSpec> {
    if s != "grid" {
        return parse_sampler(s);
    }
    let Some(space) = space else {
        bail!("--sampler grid needs the search space: pass --space FILE");
    };
    grid_from_space(space)
}

/// The most values one parameter may contribute to a grid built from the space.
const GRID_MAX_VALUES: u64 = 10_000;

/// Every value of every parameter: categorical choices, int ranges, stepped float ranges.
pub fn grid_from_space(space: &SearchSpaceFile) -> anyhow::Result<SamplerSpec> {
    let mut grid: BTreeMap<String, Vec<ParamValue>> = BTreeMap::new();
    for p in space.params() {
        let dist = p.distribution();
        let values: Vec<ParamValue> = match dist {
            Distribution::Categorical(c) => c.choices().to_vec(),
            Distribution::Float(f) if f.step().is_none() => bail!(
                "--sampler grid: parameter {} is a continuous float ({dist}); grid search needs \
                 every parameter to be categorical, int, or a float with a `step`",
                p.name()
            ),
            _ => {
                let n = dist.cardinality().unwrap_or(u64::MAX);
                if n > GRID_MAX_VALUES {
                    bail!(
                        "--sampler grid: parameter {} has {n} values ({dist}); a grid takes at \
                         most {GRID_MAX_VALUES} per parameter: give it a step or use another \
                         sampler",
                        p.name()
                    );
                }
                let (low, step) = match dist {
                    Distribution::Int(i) => (i.low() as f64, i.step() as f64),
                    Distribution::Float(f) => (f.low(), f.step().unwrap_or(1.0)),
                    Distribution::Categorical(_) => (0.0, 1.0),
                };
                (0..n)
                    .map(|k| dist.to_external(low + k as f64 * step))
                    .collect::<Result<_, _>>()?
            }
        };
        grid.insert(p.name().to_owned(), values);
    }
    if space.params().iter().any(|p| p.conditions_text().is_some()) {
        tracing::warn!(
            "--sampler grid with conditional parameters: points that differ only in an inactive \
             parameter run the same configuration"
        );
    }
    Ok(SamplerSpec::Grid { grid })
}

/// The study name as one path component: letters, digits, `-`, `_` and `.` kept, anything
/// else `_`.
fn path_safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match s.as_str() {
        "" | "." | ".." => format!("study{s}"),
        _ => s,
    }
}

/// The CPU cores this process may run on.
fn available_cpus() -> anyhow::Result<Vec<usize>> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use nix::sched::{sched_getaffinity, CpuSet};
        let set = sched_getaffinity(nix::unistd::Pid::from_raw(0))
            .context("reading this process's CPU affinity")?;
        Ok((0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect())
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok((0..n).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space_file::Format;

    #[test]
    fn metric_names_must_fit_a_report_line() {
        for ok in ["val_loss", "val/loss", "acc@1"] {
            check_metric_name(ok).unwrap();
        }
        for bad in ["", "step", "val loss", "a=b"] {
            let msg = check_metric_name(bad).unwrap_err().to_string();
            assert!(msg.contains("ferrotune:"), "{msg}");
        }
        assert_eq!(default_metrics(&[], 1).unwrap(), ["value"]);
        assert!(default_metrics(&[], 2).is_err());
    }

    #[test]
    fn grids_come_from_discrete_spaces() {
        let space = SearchSpaceFile::from_str(
            r#"{"params": {"opt": {"type": "categorical", "choices": ["adam", "sgd"]},
                "layers": {"type": "int", "low": 2, "high": 8, "step": 3},
                "dropout": {"type": "float", "low": 0.0, "high": 0.3, "step": 0.1}}}"#,
            Format::Json,
        )
        .unwrap();
        let SamplerSpec::Grid { grid } = grid_from_space(&space).unwrap() else {
            panic!("not a grid");
        };
        assert_eq!(
            grid["opt"],
            [ParamValue::from("adam"), ParamValue::from("sgd")]
        );
        assert_eq!(
            grid["layers"],
            [ParamValue::Int(2), ParamValue::Int(5), ParamValue::Int(8)]
        );
        assert_eq!(grid["dropout"].len(), 4);
        let continuous = SearchSpaceFile::from_str(
            r#"{"params": {"lr": {"type": "float", "low": 0.1, "high": 0.3}}}"#,
            Format::Json,
        )
        .unwrap();
        let msg = grid_from_space(&continuous).unwrap_err().to_string();
        assert!(msg.contains("lr") && msg.contains("step"), "{msg}");
    }

    #[test]
    fn study_names_become_safe_directory_names() {
        assert_eq!(path_safe("my-study_1.v2"), "my-study_1.v2");
        assert_eq!(path_safe("a/b c"), "a_b_c");
        assert_eq!(path_safe(".."), "study..");
    }

    #[test]
    fn a_worker_conflict_names_the_stored_setting() {
        let stored = RunSettings {
            trials: None,
            retries: 1,
            trial_timeout_s: Some(90.0),
            kill_grace_s: None,
            ..RunSettings::default()
        };
        let given = |o: StudyOptions| stored.clone().with(&o);
        let msg = stored.conflict(
            &given(StudyOptions {
                trials: Some(5),
                ..StudyOptions::default()
            }),
            "s",
        );
        assert_eq!(
            msg,
            "study `s` stores no --trials value, but this worker gives --trials 5"
        );
        let msg = stored.conflict(
            &given(StudyOptions {
                trial_timeout: Some(Duration::from_secs(120)),
                ..StudyOptions::default()
            }),
            "s",
        );
        assert!(
            msg.starts_with(
                "study `s` stores --trial-timeout 1m30s, but this worker gives --trial-timeout 2m"
            ),
            "{msg}"
        );
        let msg = stored.conflict(
            &given(StudyOptions {
                kill_grace: Some(Duration::from_secs(3)),
                ..StudyOptions::default()
            }),
            "s",
        );
        assert!(msg.contains("stores no --kill-grace value"), "{msg}");
    }

    #[test]
    fn run_settings_take_the_given_flags() {
        let stored = RunSettings {
            trials: Some(10),
            retries: 2,
            trial_timeout_s: Some(60.0),
            kill_grace_s: None,
            ..RunSettings::default()
        };
        let given = StudyOptions {
            trials: Some(20),
            kill_grace: Some(Duration::from_secs(3)),
            ..StudyOptions::default()
        };
        let merged = stored.with(&given);
        assert_eq!(merged.trials, Some(20));
        assert_eq!(merged.retries, 2);
        assert_eq!(merged.trial_timeout_s, Some(60.0));
        assert_eq!(merged.kill_grace_s, Some(3.0));
    }
}
