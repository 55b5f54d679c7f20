//! `ferrotune launch`: manifests that start many `ferrotune worker`s on one study.
//!
//! ```text
//! ferrotune launch k8s --study S --workers 8 --image registry/team/train:1 --secret hpo-db \
//!     --gpus-per-pod 1 > job.yaml && kubectl apply -f job.yaml
//! ferrotune launch slurm --study S --workers 8 --gpus-per-task 1 --time 04:00:00 > job.sbatch
//! ```
//!
//! Nothing is started and the storage is not contacted (its host is often reachable only from
//! inside the cluster): the commands print a Kubernetes `batch/v1` Job ([`k8s`]) or an sbatch
//! array script ([`slurm`]) for the user to read and submit. Each pod or array task runs one
//! `ferrotune worker`, which takes everything about the study from the storage and exits when
//! the study is complete.
//!
//! A storage password is never written into what is printed: Kubernetes reads the URL from a
//! Secret, Slurm from the submitting environment or a private file.

pub mod k8s;
pub mod names;
pub mod slurm;
pub mod yaml;

use crate::run::slots::GpuShare;
use crate::storage_url::redact;
use anyhow::bail;

/// The launchers.
#[derive(clap::Subcommand, Debug)]
pub enum LaunchCommand {
    /// Print a Kubernetes Job whose pods each run a `ferrotune worker` on the study.
    ///
    /// `ferrotune launch k8s --study S --workers 8 --image IMAGE --secret hpo-db | kubectl apply
    /// -f -`: 8 pods at once (parallelism and completions 8), restarted on failure; the storage
    /// URL comes from the Secret (key `url`), never from the manifest.
    #[command(name = "k8s", visible_alias = "kubernetes")]
    K8s(k8s::K8sArgs),
    /// Print an sbatch script: a Slurm job array with one `ferrotune worker` per array task.
    ///
    /// `ferrotune launch slurm --study S --workers 8 --gpus-per-task 1 > w.sbatch && sbatch
    /// w.sbatch`; a storage URL with a password is read at run time from FERROTUNE_STORAGE or
    /// --storage-file, never written into the script.
    Slurm(slurm::SlurmArgs),
}

/// What every launcher takes: the study, how many workers, and each worker's options.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkerSet {
    /// The study, as `ferrotune run … --create-only` stored it.
    #[arg(long, env = "FERROTUNE_STUDY")]
    pub study: String,
    /// The study's storage URL, as the workers will reach it: postgres://user@host:port/db.
    /// A URL with a password is never written out (see --secret or --storage-file).
    #[arg(long, env = "FERROTUNE_STORAGE", hide_env_values = true)]
    pub storage: Option<String>,
    /// How many workers (pods or array tasks) run at once.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub workers: u32,
    /// Trials each worker runs at once (`worker --jobs`) [default: 1, or one per GPU].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub jobs: Option<u64>,
    /// GPUs per trial inside a worker (`worker --gpus-per-trial`): a whole number or a
    /// fraction such as 0.5 [default: 1].
    #[arg(long)]
    pub gpus_per_trial: Option<GpuShare>,
    /// CPU cores per trial inside a worker (`worker --cpus-per-trial`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub cpus_per_trial: Option<u64>,
    /// The ferrotune binary where the workers run.
    #[arg(long, default_value = "ferrotune")]
    pub ferrotune: String,
    /// More options for every `ferrotune worker`, after `--`: `-- --tee --timeout 11h`.
    #[arg(last = true, value_name = "WORKER_OPTIONS")]
    pub worker_options: Vec<String>,
}

impl WorkerSet {
    /// Checks what does not depend on the launcher: a storage URL for many machines, a study
    /// name, the worker options.
    fn check(&self) -> anyhow::Result<()> {
        if self.study.is_empty() {
            bail!("--study is empty: name the study the workers run");
        }
        if self.ferrotune.is_empty() || self.ferrotune.contains(char::is_control) {
            bail!(
                "--ferrotune `{}`: give the path or name of the ferrotune binary",
                self.ferrotune
            );
        }
        if let Some(w) = self
            .worker_options
            .iter()
            .find(|w| w.contains(['\n', '\r', '\0']))
        {
            bail!("worker option {w:?} holds a line break or NUL; give options on one line");
        }
        for (flag, name) in [
            ("--study", "study"),
            ("--storage", "storage"),
            ("--gpus", "gpus"),
            ("--jobs", "jobs"),
            ("--gpus-per-trial", "gpus-per-trial"),
            ("--cpus-per-trial", "cpus-per-trial"),
        ] {
            if self
                .worker_options
                .iter()
                .any(|w| w == flag || w.starts_with(&format!("{flag}=")))
            {
                bail!(
                    "{flag} after `--` is set by the launcher: give --{name} to `ferrotune \
                     launch` itself{}",
                    if name == "gpus" {
                        " (the workers get the GPUs of their pod or task)"
                    } else {
                        ""
                    }
                );
            }
        }
        Ok(())
    }

    /// The worker's arguments after `ferrotune worker`, with `gpus` as its `--gpus` list
    /// when given.
    fn worker_args(&self, gpus: Option<String>) -> Vec<String> {
        let mut args = vec!["--study".to_owned(), self.study.clone()];
        if let Some(jobs) = self.jobs {
            args.extend(["--jobs".to_owned(), jobs.to_string()]);
        }
        if let Some(gpus) = gpus {
            args.extend(["--gpus".to_owned(), gpus]);
        }
        if let Some(share) = self.gpus_per_trial {
            args.extend(["--gpus-per-trial".to_owned(), share.to_string()]);
        }
        if let Some(c) = self.cpus_per_trial {
            args.extend(["--cpus-per-trial".to_owned(), c.to_string()]);
        }
        args.extend(self.worker_options.iter().cloned());
        args
    }

    /// Checks `--gpus-per-trial` against the GPUs each worker gets.
    fn check_gpus(&self, gpus: Option<u32>, flag: &str) -> anyhow::Result<()> {
        match (gpus, self.gpus_per_trial) {
            (None, Some(_)) => {
                bail!("--gpus-per-trial needs GPUs: give each worker some with {flag}")
            }
            (Some(n), Some(share)) if share.capacity(n as usize) == 0 => bail!(
                "--gpus-per-trial {share} does not fit on the {n} GPU(s) of a worker ({flag} \
                 {n}): give more GPUs or fewer per trial"
            ),
            _ => Ok(()),
        }
    }
}

/// Whether the URL names a storage that machines other than this one can share.
fn is_postgres(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// A storage URL that is not PostgreSQL, described for messages.
fn describe_non_postgres(url: &str) -> String {
    format!("`{}` is not a PostgreSQL URL", redact(url))
}

/// A string as one shell word: plain when it is made of safe characters, else single-quoted.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,:/+@%=".contains(c))
        && !s.starts_with('=');
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `ferrotune launch …`: prints the manifest on stdout, notes on stderr.
pub fn command(command: &LaunchCommand) -> anyhow::Result<()> {
    let (text, notes) = match command {
        LaunchCommand::K8s(args) => (k8s::manifest(args)?, Vec::new()),
        LaunchCommand::Slurm(args) => slurm::script(args)?,
    };
    for note in notes {
        eprintln!("note: {note}");
    }
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("my-study_1.v2"), "my-study_1.v2");
        assert_eq!(shell_quote("My Study"), "'My Study'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote("=x"), "'=x'");
    }
}
