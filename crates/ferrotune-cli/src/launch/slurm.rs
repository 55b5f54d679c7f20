//! `ferrotune launch slurm`: an sbatch script for a job array of workers.
//!
//! `#SBATCH --array=0-(N-1)` makes N array tasks; each is one task (`--ntasks=1`) that runs
//! one `srun ferrotune worker` with the task's CPUs and GPUs. Every worker exits when the
//! study holds its budget, so the array ends with the study. At the time limit, or on
//! `scancel`, Slurm sends SIGTERM: the worker stops its running trials and re-queues them.
//!
//! With `--gpus-per-task`, the worker gets the task's GPUs as `--gpus "$CUDA_VISIBLE_DEVICES"`,
//! read inside the job step (where Slurm sets it), so it runs one trial per GPU unless
//! `--gpus-per-trial` or `--jobs` say otherwise.
//!
//! The storage URL: written into the script only when it holds no password; otherwise read
//! at run time from `--storage-file` (a private file on the shared file system) or from
//! `FERROTUNE_STORAGE` in the environment `sbatch` passes on.

use super::names::workers_name;
use super::{describe_non_postgres, is_postgres, shell_quote, WorkerSet};
use crate::storage_url::{has_password, redact};
use anyhow::bail;
use std::path::PathBuf;

/// The options of `ferrotune launch slurm`.
#[derive(clap::Args, Debug, Clone)]
pub struct SlurmArgs {
    #[command(flatten)]
    pub workers: WorkerSet,
    /// GPUs per array task (`--gpus-per-task`); the worker runs one trial per GPU unless
    /// --gpus-per-trial or --jobs say otherwise.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub gpus_per_task: Option<u32>,
    /// CPUs per array task (`--cpus-per-task`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub cpus_per_task: Option<u32>,
    /// Memory per array task (`--mem`): 16G, 4000M.
    #[arg(long)]
    pub mem: Option<String>,
    /// Time limit per array task (`--time`): HH:MM:SS, MM, D-HH, D-HH:MM:SS.
    #[arg(long)]
    pub time: Option<String>,
    /// The partition (`--partition`).
    #[arg(long)]
    pub partition: Option<String>,
    /// The job's name [default: ferrotune-<study>, made a valid name].
    #[arg(long)]
    pub job_name: Option<String>,
    /// A file on the nodes that holds the storage URL, read when each task starts (keep it
    /// private: chmod 600). Without it, a URL with a password is read from FERROTUNE_STORAGE,
    /// which must be set when you run sbatch.
    #[arg(long)]
    pub storage_file: Option<PathBuf>,
    /// Another `#SBATCH` option, as written after `#SBATCH `: --sbatch=--account=ml
    /// --sbatch=--qos=high (repeatable).
    #[arg(long = "sbatch", value_name = "OPTION", allow_hyphen_values = true)]
    pub sbatch: Vec<String>,
}

/// How a task gets the storage URL.
enum Storage {
    /// Written into the script (no password).
    Inline(String),
    /// Read from a file when the task starts.
    File(PathBuf),
    /// From FERROTUNE_STORAGE in the submitting environment.
    Environment,
}

/// The sbatch script, and notes for the user (printed on stderr).
pub fn script(args: &SlurmArgs) -> anyhow::Result<(String, Vec<String>)> {
    let w = &args.workers;
    w.check()?;
    w.check_gpus(args.gpus_per_task, "--gpus-per-task")?;
    let mut notes = Vec::new();
    let storage = storage(args, &mut notes)?;
    let name = match &args.job_name {
        Some(n) => {
            check_word("--job-name", n)?;
            n.clone()
        }
        None => workers_name(&w.study),
    };
    if let Some(t) = &args.time {
        check_time(t)?;
    }
    if let Some(m) = &args.mem {
        check_mem(m)?;
    }
    if let Some(p) = &args.partition {
        check_word("--partition", p)?;
    }
    for o in &args.sbatch {
        if !o.starts_with('-') || o.contains(char::is_control) {
            bail!(
                "--sbatch `{o}`: give one sbatch option as it follows `#SBATCH `, e.g. \
                 --sbatch=--account=ml"
            );
        }
    }

    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!(
        "# {n} ferrotune worker(s) on study {study}, one per array task: each runs trials until\n\
         # the study holds its --trials budget, then exits. Submit from the directory the\n\
         # study's command runs in (on a shared file system): sbatch FILE\n",
        n = w.workers,
        study = serde_json::Value::from(w.study.as_str()),
    ));
    let mut directive = |option: String| s.push_str(&format!("#SBATCH {option}\n"));
    directive(format!("--job-name={name}"));
    directive(format!("--array=0-{}", w.workers - 1));
    directive("--nodes=1".to_owned());
    directive("--ntasks=1".to_owned());
    if let Some(c) = args.cpus_per_task {
        directive(format!("--cpus-per-task={c}"));
    }
    if let Some(g) = args.gpus_per_task {
        directive(format!("--gpus-per-task={g}"));
    }
    if let Some(m) = &args.mem {
        directive(format!("--mem={m}"));
    }
    if let Some(t) = &args.time {
        directive(format!("--time={t}"));
    }
    if let Some(p) = &args.partition {
        directive(format!("--partition={p}"));
    }
    directive(format!("--output={name}-%A_%a.out"));
    if matches!(storage, Storage::Environment) {
        directive("--export=ALL".to_owned());
    }
    for o in &args.sbatch {
        directive(o.clone());
    }
    s.push_str("set -euo pipefail\n\n");
    match &storage {
        Storage::Inline(url) => {
            s.push_str(&format!("export FERROTUNE_STORAGE={}\n", shell_quote(url)))
        }
        Storage::File(path) => s.push_str(&format!(
            "# The storage URL is read from a private file when the task starts.\n\
             FERROTUNE_STORAGE=$(cat {})\nexport FERROTUNE_STORAGE\n",
            shell_quote(&path.display().to_string())
        )),
        Storage::Environment => s.push_str(
            "# The storage URL is not written here: sbatch passes on the environment it is run\n\
             # in, so run it with FERROTUNE_STORAGE set to the URL.\n\
             : \"${FERROTUNE_STORAGE:?set FERROTUNE_STORAGE to the storage URL when running \
             sbatch}\"\nexport FERROTUNE_STORAGE\n",
        ),
    }
    s.push('\n');

    let mut srun = vec!["srun".to_owned(), "--ntasks=1".to_owned()];
    if let Some(c) = args.cpus_per_task {
        srun.push(format!("--cpus-per-task={c}"));
    }
    let worker_args: Vec<String> = w.worker_args(None).iter().map(|a| shell_quote(a)).collect();
    let line = match args.gpus_per_task {
        None => format!(
            "{} {} worker {}",
            srun.join(" "),
            shell_quote(&w.ferrotune),
            worker_args.join(" ")
        ),
        Some(g) => {
            srun.push(format!("--gpus-per-task={g}"));
            // CUDA_VISIBLE_DEVICES is read in the job step, where Slurm sets it for the task.
            format!(
                "{} bash -c 'exec \"$0\" worker --gpus \"${{CUDA_VISIBLE_DEVICES:?Slurm gave \
                 this task no GPUs}}\" \"$@\"' \\\n    {} {}",
                srun.join(" "),
                shell_quote(&w.ferrotune),
                worker_args.join(" ")
            )
        }
    };
    s.push_str(&line);
    s.push('\n');
    Ok((s, notes))
}

/// Decides how the tasks get the storage URL; adds notes on what the user must do.
fn storage(args: &SlurmArgs, notes: &mut Vec<String>) -> anyhow::Result<Storage> {
    let url = args.workers.storage.as_deref();
    if let Some(u) = url {
        if !is_postgres(u) {
            notes.push(format!(
                "{}: array tasks on several nodes share a SQLite file only on a file system \
                 with working POSIX locks (many NFS setups have none); PostgreSQL is the safe \
                 storage for workers on many machines",
                describe_non_postgres(u)
            ));
        }
    }
    if let Some(path) = &args.storage_file {
        if path.as_os_str().is_empty() || path.to_string_lossy().contains(char::is_control) {
            bail!("--storage-file: give the path of the file holding the storage URL");
        }
        if !path.is_absolute() {
            notes.push(format!(
                "--storage-file {} is relative: it is read from the directory you submit from",
                path.display()
            ));
        }
        return Ok(Storage::File(path.clone()));
    }
    match url {
        Some(u) if has_password(u) => {
            notes.push(format!(
                "the storage URL {} has a password, so the script does not hold it: run sbatch \
                 with FERROTUNE_STORAGE set to the URL (sbatch passes the environment on), or \
                 give --storage-file with a private file holding it",
                redact(u)
            ));
            Ok(Storage::Environment)
        }
        Some(u) => Ok(Storage::Inline(u.to_owned())),
        None => {
            notes.push(
                "no --storage given: the script reads the storage URL from FERROTUNE_STORAGE, \
                 which must be set when you run sbatch"
                    .to_owned(),
            );
            Ok(Storage::Environment)
        }
    }
}

/// A value that goes into an `#SBATCH` line as one word.
fn check_word(flag: &str, value: &str) -> anyhow::Result<()> {
    if value.is_empty()
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,+".contains(c))
    {
        bail!("{flag} `{value}`: use letters, digits and `-_.,+` only");
    }
    Ok(())
}

/// Slurm's time formats: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`, or
/// `UNLIMITED`.
fn check_time(t: &str) -> anyhow::Result<()> {
    let digits = |s: &str| !s.is_empty() && s.len() <= 6 && s.chars().all(|c| c.is_ascii_digit());
    let ok = match t.split_once('-') {
        _ if t.eq_ignore_ascii_case("unlimited") || t.eq_ignore_ascii_case("infinite") => true,
        Some((days, rest)) => {
            let parts: Vec<&str> = rest.split(':').collect();
            digits(days) && (1..=3).contains(&parts.len()) && parts.iter().all(|p| digits(p))
        }
        None => {
            let parts: Vec<&str> = t.split(':').collect();
            (1..=3).contains(&parts.len()) && parts.iter().all(|p| digits(p))
        }
    };
    if !ok {
        bail!("--time `{t}`: use Slurm's formats, e.g. 04:00:00, 90 (minutes), 1-12:00:00");
    }
    Ok(())
}

/// `--mem`: a number with an optional K, M, G or T.
fn check_mem(m: &str) -> anyhow::Result<()> {
    let number = m.trim_end_matches(['K', 'M', 'G', 'T']);
    let suffix_len = m.len() - number.len();
    if number.is_empty() || suffix_len > 1 || !number.chars().all(|c| c.is_ascii_digit()) {
        bail!("--mem `{m}`: give a size such as 16G, 4000M or 512 (megabytes)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SlurmArgs,
    }

    fn script_for(words: &[&str]) -> anyhow::Result<(String, Vec<String>)> {
        let mut argv = vec!["launch-slurm"];
        argv.extend(words);
        script(
            &Cli::try_parse_from(argv)
                .unwrap_or_else(|e| panic!("{e}"))
                .args,
        )
    }

    #[test]
    fn an_array_of_gpu_workers_without_the_password() {
        let (s, notes) = script_for(&[
            "--study",
            "My Study",
            "--storage",
            "postgres://bob:s3cret@db:5432/hpo",
            "--workers",
            "8",
            "--gpus-per-task",
            "2",
            "--cpus-per-task",
            "16",
            "--time",
            "04:00:00",
            "--partition",
            "gpu",
            "--sbatch=--account=ml",
            "--jobs",
            "4",
            "--gpus-per-trial",
            "0.5",
        ])
        .unwrap();
        assert!(!s.contains("s3cret"), "{s}");
        assert!(
            notes.iter().any(|n| n.contains("FERROTUNE_STORAGE")),
            "{notes:?}"
        );
        let directives: Vec<&str> = s
            .lines()
            .filter_map(|l| l.strip_prefix("#SBATCH "))
            .collect();
        assert_eq!(
            directives,
            [
                "--job-name=ferrotune-my-study",
                "--array=0-7",
                "--nodes=1",
                "--ntasks=1",
                "--cpus-per-task=16",
                "--gpus-per-task=2",
                "--time=04:00:00",
                "--partition=gpu",
                "--output=ferrotune-my-study-%A_%a.out",
                "--export=ALL",
                "--account=ml",
            ]
        );
        // Every directive comes before the first command.
        let first_command = s
            .lines()
            .position(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap();
        let last_directive = s
            .lines()
            .collect::<Vec<_>>()
            .iter()
            .rposition(|l| l.starts_with("#SBATCH"))
            .unwrap();
        assert!(last_directive < first_command, "{s}");
        assert!(s.contains(": \"${FERROTUNE_STORAGE:?"), "{s}");
        assert!(
            s.contains(
                "srun --ntasks=1 --cpus-per-task=16 --gpus-per-task=2 bash -c 'exec \"$0\" \
                 worker --gpus \"${CUDA_VISIBLE_DEVICES:?"
            ),
            "{s}"
        );
        assert!(
            s.contains("ferrotune --study 'My Study' --jobs 4 --gpus-per-trial 1/2\n"),
            "{s}"
        );
    }

    #[test]
    fn a_url_without_a_password_is_written_and_a_file_is_read() {
        let (s, _) = script_for(&[
            "--study",
            "s",
            "--storage",
            "postgres://hpo@db/hpo",
            "--workers",
            "1",
        ])
        .unwrap();
        assert!(
            s.contains("export FERROTUNE_STORAGE=postgres://hpo@db/hpo\n"),
            "{s}"
        );
        assert!(s.contains("#SBATCH --array=0-0\n"), "{s}");
        assert!(
            s.ends_with("srun --ntasks=1 ferrotune worker --study s\n"),
            "{s}"
        );
        let (s, _) = script_for(&[
            "--study",
            "s",
            "--storage",
            "postgres://bob:pw@db/hpo",
            "--storage-file",
            "/home/bob/.hpo-url",
            "--workers",
            "2",
        ])
        .unwrap();
        assert!(!s.contains("pw@"), "{s}");
        assert!(
            s.contains("FERROTUNE_STORAGE=$(cat /home/bob/.hpo-url)\n"),
            "{s}"
        );
    }

    #[test]
    fn mistakes_are_refused() {
        let base = [
            "--study",
            "s",
            "--storage",
            "postgres://db/hpo",
            "--workers",
            "2",
        ];
        let refuse = |extra: &[&str], expect: &str| {
            let mut words = base.to_vec();
            words.extend(extra);
            let err = script_for(&words).unwrap_err().to_string();
            assert!(err.contains(expect), "{extra:?}: {err}");
        };
        refuse(&["--time", "4h"], "--time");
        refuse(&["--mem", "16GB"], "--mem");
        refuse(&["--partition", "gpu; rm -rf ~"], "--partition");
        refuse(&["--sbatch", "account=ml"], "--sbatch");
        refuse(&["--gpus-per-trial", "1"], "--gpus-per-task");
    }

    #[test]
    fn slurm_times() {
        for ok in [
            "90",
            "30:00",
            "04:00:00",
            "1-12",
            "1-12:30",
            "2-00:00:00",
            "UNLIMITED",
        ] {
            check_time(ok).unwrap();
        }
        for bad in ["", "4h", "1:2:3:4", "-1", "1-", "a-1", "1--2"] {
            assert!(check_time(bad).is_err(), "{bad}");
        }
    }
}
