//! `ferrotune launch k8s`: a Kubernetes `batch/v1` Job of workers.
//!
//! The Job runs `--workers` pods at once (`parallelism` and `completions` both N, the default
//! non-indexed completion mode): the pods are interchangeable, since the study, not the Job,
//! hands out the work, and each pod's worker exits 0 once the study holds its budget, so the
//! Job completes with the study. A pod that fails (a crash, a storage outage) is restarted in
//! place (`restartPolicy: OnFailure`), up to `backoffLimit` restarts in all; a pod that is
//! evicted is replaced, and its running trials were re-queued by its worker on SIGTERM (or are
//! failed and retried through heartbeats when the node died).
//!
//! The storage URL reaches the worker in the `FERROTUNE_STORAGE` variable, from a Secret
//! (`secretKeyRef`) with `--secret`; it is written into the manifest only when it holds no
//! password. It is not on the worker's command line, where a kubelet-expanded `$(VAR)` would
//! show it in the process list.
//!
//! `shareProcessNamespace: true` makes the pod's pause container process 1, which reaps the
//! orphaned grandchildren of stopped trials (a worker as process 1 would collect them as
//! zombies).

use super::names::{check_label, label_value, workers_name};
use super::yaml::Yaml;
use super::{describe_non_postgres, is_postgres, shell_quote, WorkerSet};
use crate::storage_url::{has_password, redact};
use anyhow::bail;

/// The Secret key holding the URL when `--secret-key` is not given.
pub const DEFAULT_SECRET_KEY: &str = "url";
/// The Secret name the error messages suggest.
const SUGGESTED_SECRET: &str = "ferrotune-storage";

/// The options of `ferrotune launch k8s`.
#[derive(clap::Args, Debug, Clone)]
pub struct K8sArgs {
    #[command(flatten)]
    pub workers: WorkerSet,
    /// The container image: it holds `ferrotune` (see --ferrotune) and the program the study
    /// runs, with the study's command working from its working directory.
    #[arg(long)]
    pub image: String,
    /// A Secret holding the storage URL (under --secret-key): the workers read it from there,
    /// and --storage, when given, is only checked. Needed when the URL has a password.
    #[arg(long)]
    pub secret: Option<String>,
    /// The key of the URL in --secret.
    #[arg(long, default_value = DEFAULT_SECRET_KEY)]
    pub secret_key: String,
    /// GPUs per pod (the `nvidia.com/gpu` limit); the worker runs one trial per GPU unless
    /// --gpus-per-trial or --jobs say otherwise.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub gpus_per_pod: Option<u32>,
    /// CPU per pod, a Kubernetes quantity (4, 500m), as its request and limit.
    #[arg(long)]
    pub cpu: Option<String>,
    /// Memory per pod, a Kubernetes quantity (16Gi, 512Mi), as its request and limit.
    #[arg(long)]
    pub memory: Option<String>,
    /// The Job's name [default: ferrotune-<study>, made a valid name].
    #[arg(long)]
    pub name: Option<String>,
    /// The Job's namespace [default: kubectl's current one].
    #[arg(long)]
    pub namespace: Option<String>,
    /// Pod restarts after failures, in all, before the Job gives up.
    #[arg(long, default_value_t = 6)]
    pub backoff_limit: u32,
}

/// The Job manifest, with a comment on top saying what it does and how to apply it.
pub fn manifest(args: &K8sArgs) -> anyhow::Result<String> {
    let w = &args.workers;
    w.check()?;
    let env = storage_env(args)?;
    let name = match &args.name {
        Some(n) => {
            check_label("--name", n)?;
            n.clone()
        }
        None => workers_name(&w.study),
    };
    if let Some(ns) = &args.namespace {
        check_label("--namespace", ns)?;
    }
    if let Some(s) = &args.secret {
        check_subdomain("--secret", s)?;
        check_secret_key(&args.secret_key)?;
    }
    if args.image.trim().is_empty() || args.image.contains(char::is_whitespace) {
        bail!(
            "--image `{}`: give an image reference without spaces, e.g. \
             registry.example.com/team/train:1.0",
            args.image
        );
    }
    for (flag, q) in [("--cpu", &args.cpu), ("--memory", &args.memory)] {
        if let Some(q) = q {
            check_quantity(flag, q)?;
        }
    }
    w.check_gpus(args.gpus_per_pod, "--gpus-per-pod")?;

    // Inside the container the pod's GPUs are devices 0..G-1.
    let gpus = args
        .gpus_per_pod
        .map(|g| (0..g).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
    let mut command = vec![w.ferrotune.clone(), "worker".to_owned()];
    command.extend(w.worker_args(gpus));

    let labels = Yaml::map([
        ("app.kubernetes.io/name", Yaml::str("ferrotune")),
        ("app.kubernetes.io/component", Yaml::str("worker")),
        ("ferrotune/study", Yaml::str(label_value(&w.study))),
    ]);
    let mut metadata = vec![("name", Yaml::str(name.clone()))];
    if let Some(ns) = &args.namespace {
        metadata.push(("namespace", Yaml::str(ns.clone())));
    }
    metadata.push(("labels", labels.clone()));
    metadata.push((
        "annotations",
        Yaml::map([("ferrotune/study", Yaml::str(w.study.clone()))]),
    ));

    let mut container = vec![
        ("name", Yaml::str("worker")),
        ("image", Yaml::str(args.image.clone())),
        ("command", Yaml::strs(command)),
        ("env", Yaml::List(vec![env])),
    ];
    if let Some(resources) = resources(args) {
        container.push(("resources", resources));
    }
    let pod_spec = Yaml::map([
        ("restartPolicy", Yaml::str("OnFailure")),
        ("shareProcessNamespace", Yaml::Bool(true)),
        ("containers", Yaml::List(vec![Yaml::map(container)])),
    ]);
    let job = Yaml::map([
        ("apiVersion", Yaml::str("batch/v1")),
        ("kind", Yaml::str("Job")),
        ("metadata", Yaml::map(metadata)),
        (
            "spec",
            Yaml::map([
                ("parallelism", Yaml::Int(u64::from(w.workers))),
                ("completions", Yaml::Int(u64::from(w.workers))),
                ("backoffLimit", Yaml::Int(u64::from(args.backoff_limit))),
                (
                    "template",
                    Yaml::map([
                        ("metadata", Yaml::map([("labels", labels)])),
                        ("spec", pod_spec),
                    ]),
                ),
            ]),
        ),
    ]);

    let mut text = format!(
        "# {n} ferrotune worker(s) on study {study}: each pod runs `ferrotune worker` until the\n\
         # study holds its --trials budget, then exits; the Job completes with the study.\n\
         # Apply: kubectl apply -f FILE{ns}   Follow: kubectl logs -f -l \
         ferrotune/study={label}{ns} --prefix{max}\n",
        n = w.workers,
        study = serde_json::Value::from(w.study.as_str()),
        ns = namespace_flag(args),
        label = label_value(&w.study),
        max = if w.workers > 5 {
            format!(" --max-log-requests {}", w.workers)
        } else {
            String::new()
        },
    );
    if let Some(secret) = &args.secret {
        text.push_str(&format!(
            "# The storage URL comes from Secret {secret} (key {key}); create it with\n\
             #   kubectl create secret generic {secret}{ns} --from-literal={key}=\"$FERROTUNE_STORAGE\"\n",
            key = args.secret_key,
            ns = namespace_flag(args),
        ));
    }
    text.push_str(&job.to_document());
    Ok(text)
}

/// ` -n NAMESPACE` for the kubectl commands the messages show, or nothing.
fn namespace_flag(args: &K8sArgs) -> String {
    args.namespace
        .as_ref()
        .map_or_else(String::new, |n| format!(" -n {n}"))
}

/// The `FERROTUNE_STORAGE` variable: from the Secret, or the URL itself when it holds no
/// password. A password without a Secret is refused, with the commands that make one.
fn storage_env(args: &K8sArgs) -> anyhow::Result<Yaml> {
    let w = &args.workers;
    if let Some(url) = &w.storage {
        if !is_postgres(url) {
            bail!(
                "{}: pods share no files, so workers in several pods need a PostgreSQL storage \
                 (--storage postgres://user@host:5432/db, reachable from the pods)",
                describe_non_postgres(url)
            );
        }
    }
    let value = match (&args.secret, &w.storage) {
        (Some(secret), _) => Yaml::map([(
            "valueFrom",
            Yaml::map([(
                "secretKeyRef",
                Yaml::map([
                    ("name", Yaml::str(secret.clone())),
                    ("key", Yaml::str(args.secret_key.clone())),
                ]),
            )]),
        )]),
        (None, Some(url)) if has_password(url) => {
            let ns = namespace_flag(args);
            bail!(
                "the storage URL {} has a password, and a manifest must never hold one (anyone \
                 who can read the Job could read it). Keep the URL in a Kubernetes Secret and \
                 name it with --secret:\n  \
                 kubectl create secret generic {SUGGESTED_SECRET}{ns} --from-literal=url={}\n\
                 (with the real password in place of ***; or, with the URL in FERROTUNE_STORAGE, \
                 --from-literal=url=\"$FERROTUNE_STORAGE\"), then\n  \
                 ferrotune launch k8s --secret {SUGGESTED_SECRET} --study {} --workers {} \
                 --image {} …",
                redact(url),
                shell_quote(&redact(url)),
                shell_quote(&w.study),
                w.workers,
                shell_quote(&args.image),
            );
        }
        (None, Some(url)) => Yaml::map([("value", Yaml::str(url.clone()))]),
        (None, None) => bail!(
            "give the workers' storage: --storage postgres://user@host:5432/db, or --secret NAME \
             for a Kubernetes Secret holding the URL (key `{}`)",
            args.secret_key
        ),
    };
    let mut entry = vec![("name".to_owned(), Yaml::str("FERROTUNE_STORAGE"))];
    if let Yaml::Map(rest) = value {
        entry.extend(rest);
    }
    Ok(Yaml::Map(entry))
}

/// Requests and limits: CPU and memory as given (request = limit), GPUs as a limit.
fn resources(args: &K8sArgs) -> Option<Yaml> {
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    for (key, q) in [("cpu", &args.cpu), ("memory", &args.memory)] {
        if let Some(q) = q {
            requests.push((key, Yaml::str(q.clone())));
            limits.push((key, Yaml::str(q.clone())));
        }
    }
    if let Some(g) = args.gpus_per_pod {
        limits.push(("nvidia.com/gpu", Yaml::Int(u64::from(g))));
    }
    if limits.is_empty() {
        return None;
    }
    let mut r = Vec::new();
    if !requests.is_empty() {
        r.push(("requests", Yaml::map(requests)));
    }
    r.push(("limits", Yaml::map(limits)));
    Some(Yaml::map(r))
}

/// A Kubernetes quantity: a positive decimal number with an optional suffix (`500m`, `4`,
/// `1.5`, `16Gi`, `2G`, `1e3`).
fn check_quantity(flag: &str, q: &str) -> anyhow::Result<()> {
    let bad = || {
        anyhow::anyhow!(
            "{flag} `{q}` is not a Kubernetes quantity: give a positive number with an optional \
             suffix, e.g. 4, 500m, 1.5, 16Gi, 512Mi"
        )
    };
    let number_end = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(number_end);
    let value: f64 = number.parse().map_err(|_| bad())?;
    if number.starts_with('.') || number.ends_with('.') || !value.is_finite() || value <= 0.0 {
        return Err(bad());
    }
    let exponent_ok = suffix.strip_prefix(['e', 'E']).is_some_and(|e| {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
    });
    let suffixes = [
        "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    if suffixes.contains(&suffix) || exponent_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// A Secret's name: a DNS-1123 subdomain (labels joined by dots, at most 253 characters).
fn check_subdomain(flag: &str, name: &str) -> anyhow::Result<()> {
    if name.len() > 253
        || name
            .split('.')
            .any(|label| check_label(flag, label).is_err())
    {
        bail!(
            "{flag} `{name}` is not a valid Kubernetes name (a DNS-1123 subdomain): use \
             lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit"
        );
    }
    Ok(())
}

/// A Secret key: letters, digits, `-`, `_` and `.`.
fn check_secret_key(key: &str) -> anyhow::Result<()> {
    if key.is_empty()
        || key.len() > 253
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bail!("--secret-key `{key}`: a Secret key holds letters, digits, `-`, `_` and `.`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use yaml_serde::Value;

    /// `ferrotune launch k8s ARGS`, parsed as the binary parses it.
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: K8sArgs,
    }

    fn args(words: &[&str]) -> K8sArgs {
        let mut argv = vec!["launch-k8s"];
        argv.extend(words);
        Cli::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("{e}"))
            .args
    }

    fn parse(text: &str) -> Value {
        yaml_serde::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn strs(v: &Value) -> Vec<&str> {
        v.as_sequence()
            .unwrap_or_else(|| panic!("not a list: {v:?}"))
            .iter()
            .map(|s| s.as_str().unwrap_or_else(|| panic!("not a string: {s:?}")))
            .collect()
    }

    /// The keys of a mapping, in order.
    fn keys(v: &Value) -> Vec<&str> {
        v.as_mapping()
            .unwrap_or_else(|| panic!("not a mapping: {v:?}"))
            .keys()
            .map(|k| k.as_str().unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_job_of_gpu_workers_with_the_url_from_a_secret() {
        let text = manifest(&args(&[
            "--study",
            "My Study",
            "--storage",
            "postgres://bob:s3cret@db.internal:5432/hpo",
            "--workers",
            "4",
            "--image",
            "registry.example.com/team/train:1.0",
            "--secret",
            "hpo-db",
            "--gpus-per-pod",
            "2",
            "--cpu",
            "8",
            "--memory",
            "32Gi",
            "--namespace",
            "ml",
            "--",
            "--tee",
        ]))
        .unwrap();
        assert!(!text.contains("s3cret"), "{text}");
        let job = parse(&text);
        assert_eq!(keys(&job), ["apiVersion", "kind", "metadata", "spec"]);
        assert_eq!(job["apiVersion"].as_str(), Some("batch/v1"));
        assert_eq!(job["kind"].as_str(), Some("Job"));
        let name = job["metadata"]["name"].as_str().unwrap();
        assert_eq!(name, "ferrotune-my-study");
        check_label("name", name).unwrap();
        assert_eq!(job["metadata"]["namespace"].as_str(), Some("ml"));
        assert_eq!(
            job["metadata"]["annotations"]["ferrotune/study"].as_str(),
            Some("My Study")
        );
        let spec = &job["spec"];
        assert_eq!(
            keys(spec),
            ["parallelism", "completions", "backoffLimit", "template"]
        );
        assert_eq!(spec["parallelism"].as_u64(), Some(4));
        assert_eq!(spec["completions"].as_u64(), Some(4));
        assert_eq!(spec["backoffLimit"].as_u64(), Some(6));
        let labels = &spec["template"]["metadata"]["labels"];
        assert_eq!(labels, &job["metadata"]["labels"]);
        for (k, v) in labels.as_mapping().unwrap() {
            let (k, v) = (k.as_str().unwrap(), v.as_str().unwrap());
            let key_name = k.rsplit('/').next().unwrap();
            assert!(key_name.len() <= 63 && v.len() <= 63, "{k}={v}");
        }
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"].as_str(), Some("OnFailure"));
        assert_eq!(pod["shareProcessNamespace"].as_bool(), Some(true));
        let containers = pod["containers"].as_sequence().unwrap();
        assert_eq!(containers.len(), 1);
        let c = &containers[0];
        assert_eq!(keys(c), ["name", "image", "command", "env", "resources"]);
        assert_eq!(
            c["image"].as_str(),
            Some("registry.example.com/team/train:1.0")
        );
        assert_eq!(
            strs(&c["command"]),
            [
                "ferrotune",
                "worker",
                "--study",
                "My Study",
                "--gpus",
                "0,1",
                "--tee"
            ]
        );
        let env = c["env"].as_sequence().unwrap();
        assert_eq!(env.len(), 1);
        assert_eq!(env[0]["name"].as_str(), Some("FERROTUNE_STORAGE"));
        assert!(env[0].get("value").is_none());
        let secret = &env[0]["valueFrom"]["secretKeyRef"];
        assert_eq!(secret["name"].as_str(), Some("hpo-db"));
        assert_eq!(secret["key"].as_str(), Some("url"));
        let r = &c["resources"];
        assert_eq!(r["requests"]["cpu"].as_str(), Some("8"));
        assert_eq!(r["limits"]["cpu"].as_str(), Some("8"));
        assert_eq!(r["limits"]["memory"].as_str(), Some("32Gi"));
        assert_eq!(r["limits"]["nvidia.com/gpu"].as_u64(), Some(2));
        assert!(r["requests"].get("nvidia.com/gpu").is_none());
        assert!(
            text.contains("kubectl create secret generic hpo-db -n ml"),
            "{text}"
        );
    }

    #[test]
    fn a_url_without_a_password_is_written_and_nothing_else_is_added() {
        let text = manifest(&args(&[
            "--study",
            "on",
            "--storage",
            "postgres://hpo@db:5432/hpo",
            "--workers",
            "1",
            "--image",
            "train",
            "--jobs",
            "3",
            "--cpus-per-trial",
            "2",
        ]))
        .unwrap();
        let job = parse(&text);
        let c = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            strs(&c["command"]),
            [
                "ferrotune",
                "worker",
                "--study",
                "on",
                "--jobs",
                "3",
                "--cpus-per-trial",
                "2"
            ]
        );
        assert_eq!(
            c["env"][0]["value"].as_str(),
            Some("postgres://hpo@db:5432/hpo")
        );
        assert!(c.get("resources").is_none());
        assert_eq!(job["metadata"]["name"].as_str(), Some("ferrotune-on"));
        // `on` would be a boolean to Kubernetes' YAML 1.1 reader if it were not quoted.
        assert!(text.contains("- \"on\""), "{text}");
    }

    #[test]
    fn a_password_without_a_secret_is_refused_with_the_way_to_make_one() {
        let err = manifest(&args(&[
            "--study",
            "s",
            "--storage",
            "postgres://bob:s3cret@db/hpo",
            "--workers",
            "2",
            "--image",
            "train",
        ]))
        .unwrap_err()
        .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(
            err.contains(
                "kubectl create secret generic ferrotune-storage \
                 --from-literal=url='postgres://bob:***@db/hpo'"
            ),
            "{err}"
        );
        assert!(err.contains("--secret ferrotune-storage"), "{err}");
    }

    #[test]
    fn mistakes_are_refused() {
        let base = ["--study", "s", "--workers", "2", "--image", "train"];
        let refuse = |extra: &[&str], expect: &str| {
            let mut words = base.to_vec();
            words.extend(extra);
            let err = manifest(&args(&words)).unwrap_err().to_string();
            assert!(err.contains(expect), "{extra:?}: {err}");
        };
        refuse(&["--storage", "sqlite:///hpo.db"], "PostgreSQL");
        refuse(&[], "--storage postgres://");
        let pg = ["--storage", "postgres://db/hpo"];
        refuse(&[&pg[..], &["--name", "My_Job"]].concat(), "DNS-1123");
        refuse(&[&pg[..], &["--cpu", "four"]].concat(), "quantity");
        refuse(&[&pg[..], &["--memory", "16GB"]].concat(), "quantity");
        refuse(
            &[&pg[..], &["--gpus-per-trial", "1"]].concat(),
            "--gpus-per-pod",
        );
        refuse(
            &[&pg[..], &["--gpus-per-pod", "1", "--gpus-per-trial", "2"]].concat(),
            "does not fit",
        );
        refuse(
            &[&pg[..], &["--secret", "Hpo DB"]].concat(),
            "DNS-1123 subdomain",
        );
        refuse(
            &[&pg[..], &["--", "--gpus", "3"]].concat(),
            "set by the launcher",
        );
    }

    #[test]
    fn quantities() {
        for ok in ["4", "500m", "1.5", "16Gi", "512Mi", "2G", "1e3", "100k"] {
            check_quantity("--cpu", ok).unwrap();
        }
        for bad in ["", "0", "-1", "four", "16GB", "1.", ".5", "1e", "m"] {
            assert!(check_quantity("--cpu", bad).is_err(), "{bad}");
        }
    }
}
