//! `ferrotune worker`: the loop of `ferrotune run`, configured by the stored study alone.
//!
//! ```text
//! ferrotune run --study S --storage postgres://… --space space.toml --direction minimize \
//!     --trials 200 --create-only -- python train.py --lr {lr}      # once, anywhere
//! ferrotune worker --study S --storage postgres://… --gpus 0,1     # on every machine
//! ```
//!
//! The space, the command, the metrics, the directions, the sampler, the pruner or the
//! scheduler (with its checkpoint directory), the seed and the run settings (budget, retries,
//! limits, heartbeats) all come from the study, so every worker runs the same study; only this machine's options (`--jobs`, `--gpus`, `--workdir`, output) are
//! given here. Study flags are accepted for scripts that pass the same flags to `run` and
//! `worker`: each must agree with the stored value, and a worker never changes the study.
//! Each worker exits when the study holds its budget of trials (or the sampler has nothing
//! left), so a Kubernetes Job or Slurm array of workers ends when the study is complete.

use super::config::{resolve, LocalOptions, Role, StudyOptions};
use super::{check_program, run};
use crate::storage_url::{open, Access};
use std::process::ExitCode;

/// The options of `ferrotune worker`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = HELP)]
pub struct WorkerArgs {
    /// The study, as `ferrotune run` stored it (`run … --create-only` stores one without
    /// running a trial).
    #[arg(long, env = "FERROTUNE_STUDY")]
    pub study: String,
    #[command(flatten)]
    pub storage: crate::StorageArg,
    #[command(flatten)]
    pub local: LocalOptions,
    /// Study flags, all optional: each is checked against the stored study and must agree.
    #[command(
        flatten,
        next_help_heading = "Study options (optional; each must match the stored study)"
    )]
    pub study_options: StudyOptions,
}

const HELP: &str = "\
A worker runs trials of a study that `ferrotune run` stored, until the study holds its --trials
budget: run any number of workers, on any machines sharing the storage (PostgreSQL; SQLite for
processes on one machine), and together they run the study once. Everything about the study
comes from the storage; give only this machine's options (--jobs, --gpus, --gpus-per-trial,
--cpus-per-trial, --workdir, --timeout, --tee, --quiet, --json).

With a scheduler (pause and resume), paused trials are resumed by whichever worker is free:
every worker must reach the study's checkpoint directory (a shared file system), at the stored
path or at the one given with --checkpoint-dir.

Create the study without running a trial:
  ferrotune run --study S --storage URL --space space.toml --direction minimize \\
      --trials 200 --create-only -- python train.py --lr {lr}
`ferrotune launch k8s` and `ferrotune launch slurm` print a Kubernetes Job or a Slurm array of
workers. SIGTERM or Ctrl-C stops the running trials and re-queues them for the other workers.
Exit status: 0 done, 1 every trial of this worker failed, 2 error, 130 interrupted.";

/// `ferrotune worker`.
pub fn command(args: &WorkerArgs) -> anyhow::Result<ExitCode> {
    // A worker never creates a storage: a mistyped SQLite path is an error, not a new file.
    let storage = open(&args.storage.storage, Access::Existing)?;
    let (config, study) = resolve(
        &args.study,
        &storage,
        &args.study_options,
        &args.local,
        Role::Worker,
    )?;
    check_program(config.command.words(), config.chdir)?;
    let report = run(&config, &study)?;
    Ok(report.exit_code())
}
