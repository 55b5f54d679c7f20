//! `ferrotune ask` and `ferrotune tell`: one trial at a time from a shell loop.
//!
//! `ask` opens the study (creating it, with `--space` and `--direction`, when it is missing),
//! starts a trial, suggests the study's stored search space and prints the trial number and
//! parameters; the process exits and the trial stays Running in storage. `tell` later finishes
//! that trial by number from any process. The search space is stored with the study
//! ([`SPACE_ATTR`]), so every later `ask`, on any machine, suggests exactly the same space.

use crate::space_file::{SearchSpaceFile, SPACE_ATTR};
use crate::storage_url::{open, redact, Access};
use crate::studies::parse_sampler;
use anyhow::{bail, Context};
use clap::ValueEnum;
use ferrotune::{Direction, ParamValue, Storage, Study, TrialState};
use std::io::Write;
use std::path::PathBuf;

/// How `ask` prints the trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AskFormat {
    /// One JSON object: `{"trial": 12, "params": {"lr": 0.01, "momentum": null}}`; an inactive
    /// parameter is `null`, so every parameter of the space is present.
    Json,
    /// Shell assignments for `eval`: `FERROTUNE_TRIAL_NUMBER=12`, `FERROTUNE_PARAM_LR=0.01`;
    /// an inactive parameter is set to the empty string (so a value from an earlier iteration
    /// of a loop never lingers).
    Env,
}

/// The options of `ferrotune ask`.
#[derive(clap::Args, Debug)]
pub struct AskArgs {
    /// The study.
    #[arg(long, env = "FERROTUNE_STUDY")]
    pub study: String,
    /// Search-space file (.toml, .yaml, .yml, .json). Stored with the study when it is created
    /// (or when the study has none yet); later it must match the stored space.
    #[arg(long)]
    pub space: Option<PathBuf>,
    /// One per objective: minimize or maximize. With --space, a missing study is created.
    #[arg(long = "direction")]
    pub directions: Vec<Direction>,
    /// random, qmc, halton, tpe, or a JSON sampler spec (see `ferrotune samplers`); checked
    /// against the stored one for an existing study.
    #[arg(long)]
    pub sampler: Option<String>,
    /// The study seed (generated and stored when not given).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = AskFormat::Json)]
    pub format: AskFormat,
    #[command(flatten)]
    pub storage: crate::StorageArg,
}

/// How `tell --state` ends a trial without values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TellState {
    /// Failed (with `--reason`).
    Fail,
    /// Pruned; its last intermediate value, if any, becomes its value.
    Pruned,
}

/// The options of `ferrotune tell`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("outcome").required(true).args(["values", "state"])))]
pub struct TellArgs {
    /// The study.
    #[arg(long, env = "FERROTUNE_STUDY")]
    pub study: String,
    /// The trial number `ask` printed.
    #[arg(long)]
    pub trial: u64,
    /// The objective value, once per objective in the study's order (NaN marks the trial
    /// failed, as the library does; inf is a value).
    #[arg(long = "value", allow_negative_numbers = true)]
    pub values: Vec<f64>,
    /// End the trial without values instead.
    #[arg(long, value_enum, conflicts_with = "values")]
    pub state: Option<TellState>,
    /// Why the trial failed (with --state fail).
    #[arg(long, requires = "state")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub storage: crate::StorageArg,
}

/// `ferrotune ask`.
pub fn ask(args: &AskArgs) -> anyhow::Result<()> {
    let url = &args.storage.storage;
    let file_space = args
        .space
        .as_deref()
        .map(SearchSpaceFile::load)
        .transpose()?;
    let may_create = file_space.is_some() && !args.directions.is_empty();
    let storage = open(
        url,
        if may_create {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        },
    )?;
    if !may_create {
        match storage.study_by_name(&args.study) {
            Ok(_) => {}
            Err(ferrotune::Error::StudyNotFound(_)) => bail!(
                "study `{}` not found in {}; to create it, pass --space FILE and --direction \
                 minimize|maximize",
                args.study,
                redact(url)
            ),
            Err(e) => return Err(e.into()),
        }
    }
    let mut builder = Study::builder()
        .storage(storage.clone())
        .name(&args.study)
        .load_if_exists(true);
    if !args.directions.is_empty() {
        builder = builder.directions(args.directions.clone());
    }
    if let Some(s) = &args.sampler {
        builder = builder.sampler(parse_sampler(s)?);
    }
    if let Some(seed) = args.seed {
        builder = builder.seed(seed);
    }
    let study = builder.build()?;
    let given = file_space.zip(args.space.as_ref().map(|p| p.display().to_string()));
    let space = study_space(&*storage, &study, given)?;
    // Checked before a trial is started, so a refused space leaves no trial behind.
    let env_names = match args.format {
        AskFormat::Env => Some(
            space
                .env_var_names()
                .map_err(|e| anyhow::anyhow!("{e}, or use --format json"))?,
        ),
        AskFormat::Json => None,
    };

    let mut trial = study.ask()?;
    let number = trial.number();
    let params = match space.suggest(&mut trial) {
        Ok(p) => p,
        Err(e) => {
            // Leave no orphan Running trial behind.
            let reason = format!("suggesting the stored search space failed: {e}");
            study.tell_failed(trial, &reason)?;
            bail!("trial #{number}: {reason}");
        }
    };
    drop(trial);
    let mut out = std::io::stdout().lock();
    match args.format {
        AskFormat::Json => {
            // Written by hand so that "trial" comes first, as documented.
            let params = serde_json::to_string(&params)?;
            writeln!(out, "{{\"trial\":{number},\"params\":{params}}}")?;
        }
        AskFormat::Env => {
            writeln!(out, "FERROTUNE_TRIAL_NUMBER={number}")?;
            for (name, var) in env_names.unwrap_or_default() {
                let value = params.get(name).cloned().flatten();
                writeln!(out, "{var}={}", shell_value(value.as_ref()))?;
            }
        }
    }
    Ok(())
}

/// The study's search space: the stored one, after checking that a given file matches it; or
/// the given one, stored first-writer-wins when the study has none yet.
pub(crate) fn study_space(
    storage: &dyn Storage,
    study: &Study,
    given: Option<(SearchSpaceFile, String)>,
) -> anyhow::Result<SearchSpaceFile> {
    let stored = storage.study_system_attr(study.id(), SPACE_ATTR)?;
    let (stored, given) = match (stored, given) {
        (Some(json), given) => (json, given),
        (None, Some((space, label))) => {
            // Two workers may race to store it: both then compare against the winner's.
            let winner = storage.set_study_system_attr_if_absent(
                study.id(),
                SPACE_ATTR,
                &space.to_json(),
            )?;
            (winner, Some((space, label)))
        }
        (None, None) => bail!(
            "study `{}` has no stored search space; pass --space FILE once to store it",
            study.name()
        ),
    };
    let stored =
        SearchSpaceFile::from_json(&stored).with_context(|| format!("study `{}`", study.name()))?;
    if let Some((space, label)) = given {
        if let Some(diff) = stored.difference("the stored space", &space, &label) {
            bail!(
                "study `{}` was created with another search space: {diff}; use the same file, \
                 drop --space to use the stored space, or create a new study",
                study.name()
            );
        }
    }
    Ok(stored)
}

/// A parameter value as a shell word: numbers and plain words as they are, anything else
/// single-quoted; an inactive parameter is the empty string.
fn shell_value(value: Option<&ParamValue>) -> String {
    let text = match value {
        None => return "''".to_owned(),
        Some(ParamValue::Str(s)) => s.clone(),
        Some(v) => serde_json::to_string(v).unwrap_or_default(),
    };
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,:/+@%".contains(c));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// `ferrotune tell`.
pub fn tell(args: &TellArgs) -> anyhow::Result<()> {
    let storage = open(&args.storage.storage, Access::ReadOnly)?;
    let study = Study::load(storage.clone(), &args.study)?;
    let trials = study.trials()?;
    let Some(trial) = trials.iter().find(|t| t.number == args.trial) else {
        bail!(
            "study `{}` has no trial #{} ({}); use the number `ferrotune ask` printed",
            study.name(),
            args.trial,
            match trials.len() {
                0 => "it has no trials yet".to_owned(),
                n => format!("its trials are #0 to #{}", n - 1),
            }
        );
    };
    if trial.state != TrialState::Running {
        bail!(
            "trial #{} of study `{}` is {}{}, not running; only a trial that `ferrotune ask` \
             started and nobody has told yet can be told",
            trial.number,
            study.name(),
            trial.state,
            describe_end(trial)
        );
    }
    if let Some(state) = args.state {
        if args.reason.is_some() && state != TellState::Fail {
            bail!("--reason is recorded only with --state fail");
        }
        return tell_state(&study, trial, state, args.reason.as_deref());
    }
    let n = study.directions().len();
    if args.values.len() != n {
        bail!(
            "study `{}` has {n} objective(s) ({}) but {} --value was given; give one per objective",
            study.name(),
            study
                .directions()
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            args.values.len()
        );
    }
    // A NaN value is the library's call: it records the trial as failed (with a warning in
    // the log), as Optuna does; the line printed says so, and the exit status stays 0 since
    // the trial is finished and recorded.
    let done = study.tell_number(args.trial, args.values.clone())?;
    report(&done);
    Ok(())
}

/// Ends a Running trial as Fail or Pruned (the library's compare-and-set from Running, so a
/// trial someone else finished meanwhile is an error naming its state).
fn tell_state(
    study: &Study,
    trial: &ferrotune::FrozenTrial,
    state: TellState,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    let done = match state {
        TellState::Fail => study.tell_number_failed(
            trial.number,
            reason.unwrap_or("failed (ferrotune tell --state fail)"),
        ),
        TellState::Pruned => study.tell_number_pruned(trial.number),
    }
    .with_context(|| {
        format!(
            "cannot finish trial #{} of study `{}`",
            trial.number,
            study.name()
        )
    })?;
    report(&done);
    Ok(())
}

/// ` (value 0.5)`, ` (reason: …)` or nothing.
fn describe_end(t: &ferrotune::FrozenTrial) -> String {
    if let Some(values) = &t.values {
        let v: Vec<String> = values.iter().map(|x| x.to_string()).collect();
        return format!(" (value {})", v.join(", "));
    }
    match &t.fail_reason {
        Some(r) => format!(" (reason: {r})"),
        None => String::new(),
    }
}

/// Prints how the trial ended: `trial 12 complete (value 0.25)`.
fn report(t: &ferrotune::FrozenTrial) {
    println!("trial {} {}{}", t.number, t.state, describe_end(t));
}
