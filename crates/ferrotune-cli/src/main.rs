//! The `ferrotune` command line.

mod ask_tell;
mod helper;
#[cfg(unix)]
mod launch;
#[cfg(unix)]
mod run;
mod space_file;
mod storage_url;
mod studies;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Hyperparameter optimization from the shell.
#[derive(Parser, Debug)]
#[command(name = "ferrotune", version, about)]
struct Cli {
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

/// Where studies live.
#[derive(clap::Args, Debug)]
struct StorageArg {
    /// Storage URL: sqlite:///file.db (relative), sqlite:////abs/file.db, or
    /// postgres://user@host:port/db.
    #[arg(
        long,
        env = "FERROTUNE_STORAGE",
        hide_env_values = true,
        default_value = storage_url::DEFAULT_STORAGE
    )]
    storage: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the studies in a storage with their trial counts and best values.
    Studies {
        #[command(flatten)]
        storage: StorageArg,
    },
    /// Print a study's trials as a table, CSV or JSON Lines.
    Trials {
        /// The study.
        #[arg(long)]
        study: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = studies::Format::Table)]
        format: studies::Format,
        #[command(flatten)]
        storage: StorageArg,
    },
    /// Print a study's best trial (the Pareto front for several objectives).
    Best {
        /// The study.
        #[arg(long)]
        study: String,
        #[command(flatten)]
        storage: StorageArg,
    },
    /// Print the schedule of hyperparameters behind a trial of a PBT or PB2 study: the trial,
    /// the trial whose checkpoint it continued, and so on back to the first member, each with
    /// the steps it trained and its parameters (the best trial by default).
    Lineage {
        /// The study.
        #[arg(long)]
        study: String,
        /// The trial's number (default: the best trial).
        #[arg(long)]
        trial: Option<u64>,
        #[command(flatten)]
        storage: StorageArg,
    },
    /// Create a study.
    Create {
        /// The study.
        #[arg(long)]
        study: String,
        /// One per objective: minimize or maximize (minimize when none is given).
        #[arg(long = "direction")]
        directions: Vec<ferrotune::Direction>,
        /// random, qmc, halton, tpe, or a JSON sampler spec (see `ferrotune samplers`).
        #[arg(long)]
        sampler: Option<String>,
        /// The study seed (generated and stored when not given).
        #[arg(long)]
        seed: Option<u64>,
        #[command(flatten)]
        storage: StorageArg,
    },
    /// Delete a study and its trials.
    Delete {
        /// The study.
        #[arg(long)]
        study: String,
        #[command(flatten)]
        storage: StorageArg,
    },
    /// Rename a study.
    Rename {
        /// The study.
        #[arg(long)]
        study: String,
        /// Its new name.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        storage: StorageArg,
    },
    /// Copy a study, with every trial, to another storage (or under another name).
    Copy {
        /// The study.
        #[arg(long)]
        study: String,
        /// The destination storage URL.
        #[arg(long)]
        to_storage: String,
        /// The copy's name (the same name by default).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        storage: StorageArg,
    },
    /// Start a trial of a study and print its parameters (JSON, or shell assignments with
    /// --format env); finish it later with `ferrotune tell`.
    Ask(ask_tell::AskArgs),
    /// Finish a trial that `ferrotune ask` started: with its value(s), or as failed or pruned.
    Tell(ask_tell::TellArgs),
    /// Search-space files.
    Space {
        #[command(subcommand)]
        command: SpaceCommand,
    },
    /// Tune any program: run it as trials, reading `ferrotune: val_loss=0.4` lines it prints.
    ///
    /// `ferrotune run --study S --space space.toml --direction minimize --trials 50 -- python
    /// train.py --lr {lr}`: the program gets its parameters through `{name}` templates,
    /// FERROTUNE_PARAM_<NAME> variables and the FERROTUNE_PARAMS file, and reports
    /// `ferrotune: step=3 val_loss=0.42` lines on stdout.
    #[cfg(unix)]
    Run(Box<run::RunArgs>),
    /// Run trials of a study that `ferrotune run` stored, with nothing but this machine's
    /// options: start any number of workers on any machines sharing the storage.
    ///
    /// `ferrotune worker --study S --storage postgres://… --gpus 0,1`: the space, command,
    /// metrics, sampler, pruner and budget come from the study (`ferrotune run … --create-only`
    /// stores one without running a trial); each worker exits when the study is complete.
    #[cfg(unix)]
    Worker(Box<run::worker::WorkerArgs>),
    /// Print a Kubernetes Job or a Slurm array script that runs `ferrotune worker`s on a study.
    #[cfg(unix)]
    Launch {
        #[command(subcommand)]
        command: launch::LaunchCommand,
    },
    /// Client helpers for programs run by `ferrotune run`.
    Helper {
        #[command(subcommand)]
        command: helper::HelperCommand,
    },
    /// Print the JSON spec of every sampler, with its defaults.
    Samplers,
    /// Print the JSON spec of every pruner, with its defaults.
    Pruners,
}

#[derive(Subcommand, Debug)]
enum SpaceCommand {
    /// Validate a search-space file (.toml, .yaml/.yml or .json; `[params.NAME]` tables with
    /// type, low/high/log/step or choices, and optional `when` conditions) and print it.
    Check {
        /// The file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        #[cfg(unix)]
        Command::Run(args) => return run::command(&args),
        #[cfg(unix)]
        Command::Worker(args) => return run::worker::command(&args),
        #[cfg(unix)]
        Command::Launch { command } => launch::command(&command)?,
        Command::Helper { command } => helper::run(&command)?,
        Command::Space {
            command: SpaceCommand::Check { file },
        } => {
            let space = space_file::SearchSpaceFile::load(&file)?;
            for p in space.params() {
                let dist = p.distribution();
                let size = dist
                    .cardinality()
                    .map_or_else(|| "continuous".to_owned(), |n| format!("{n} values"));
                let when = p
                    .conditions_text()
                    .map_or_else(String::new, |w| format!("  when {w}"));
                println!("{:<24} {dist}  ({size}){when}", p.name());
            }
            println!("{} parameter(s), valid", space.len());
        }
        Command::Ask(args) => ask_tell::ask(&args)?,
        Command::Tell(args) => ask_tell::tell(&args)?,
        Command::Studies { storage } => studies::list(&storage.storage)?,
        Command::Trials {
            study,
            format,
            storage,
        } => studies::trials(&storage.storage, &study, format)?,
        Command::Best { study, storage } => studies::best(&storage.storage, &study)?,
        Command::Lineage {
            study,
            trial,
            storage,
        } => studies::lineage(&storage.storage, &study, trial)?,
        Command::Create {
            study,
            directions,
            sampler,
            seed,
            storage,
        } => studies::create(
            &storage.storage,
            &study,
            &directions,
            sampler.as_deref(),
            seed,
        )?,
        Command::Delete { study, storage } => studies::delete(&storage.storage, &study)?,
        Command::Rename { study, to, storage } => studies::rename(&storage.storage, &study, &to)?,
        Command::Copy {
            study,
            to_storage,
            to,
            storage,
        } => studies::copy(&storage.storage, &study, &to_storage, to.as_deref())?,
        Command::Samplers => {
            let specs = [
                ferrotune::SamplerSpec::Random,
                ferrotune::SamplerSpec::Qmc {
                    kind: ferrotune::sampler::QmcKind::Sobol,
                    scramble: true,
                },
            ];
            for spec in specs {
                println!(
                    "{}",
                    serde_json::to_string(&spec).context("serialize spec")?
                );
            }
            println!(
                "{}",
                serde_json::to_string(&ferrotune::SamplerSpec::tpe(Default::default()))?
            );
            println!(
                "{}",
                serde_json::to_string(&ferrotune::SamplerSpec::bohb(Default::default()))?
            );
            println!(r#"{{"type":"grid","grid":{{"lr":[0.1,0.01],"layers":[1,2,3]}}}}"#);
            println!(
                r#"{{"type":"partial_fixed","fixed":{{"lr":0.01}},"base":{{"type":"random"}}}}"#
            );
        }
        Command::Pruners => {
            let specs = [
                ferrotune::PrunerSpec::Nop,
                ferrotune::PrunerSpec::median(),
                ferrotune::PrunerSpec::successive_halving(),
                ferrotune::PrunerSpec::hyperband(),
                ferrotune::PrunerSpec::wilcoxon(),
            ];
            for spec in specs {
                println!(
                    "{}",
                    serde_json::to_string(&spec).context("serialize spec")?
                );
            }
            println!(
                r#"{{"type":"percentile","percentile":25.0,"n_startup_trials":5,"n_warmup_steps":0,"interval_steps":1,"n_min_trials":1}}"#
            );
            println!(
                r#"{{"type":"threshold","lower":null,"upper":1.0,"n_warmup_steps":0,"interval_steps":1}}"#
            );
            println!(
                r#"{{"type":"patient","patience":3,"min_delta":0.0,"wrapped":{{"type":"median"}}}}"#
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
