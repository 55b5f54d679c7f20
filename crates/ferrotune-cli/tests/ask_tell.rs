//! `ferrotune ask` / `ferrotune tell`, run as a shell loop would run them: the built binary, a
//! SQLite file in a fresh temporary directory.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

mod common;

use common::{Scratch, BIN};

struct Output {
    ok: bool,
    out: String,
    err: String,
}

fn ferrotune(args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run ferrotune");
    Output {
        ok: out.status.success(),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Output {
    /// Asserts that the command failed, with each of `parts` in its error.
    fn refused(&self, parts: &[&str]) {
        assert!(!self.ok, "succeeded: {}", self.out);
        for part in parts {
            assert!(
                self.err.contains(part),
                "`{part}` missing from: {}",
                self.err
            );
        }
    }
}

/// `ferrotune SUBCOMMAND --storage URL --study STUDY ARGS…`.
fn on_study(subcommand: &str, url: &str, study: &str, args: &[&str]) -> Output {
    let mut all = vec![subcommand, "--storage", url, "--study", study];
    all.extend(args);
    ferrotune(&all)
}

/// `ferrotune ask --storage URL --study STUDY ARGS…`.
fn ask(url: &str, study: &str, args: &[&str]) -> Output {
    on_study("ask", url, study, args)
}

fn example(ext: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("examples/spaces/classifier.{ext}"))
        .display()
        .to_string()
}

const SMALL: &str = r#"
[params.lr]
type = "float"
low = 1e-5
high = 1e-1
log = true
[params.optimizer]
type = "categorical"
choices = ["adam", "sgd"]
[params.momentum]
type = "float"
low = 0.0
high = 0.99
when = { optimizer = ["sgd"] }
"#;

/// `--space SPACE --direction minimize MORE…`: what `ask` needs to create a study.
fn creating<'a>(space: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--space", space, "--direction", "minimize"];
    args.extend_from_slice(more);
    args
}

/// The study's trials as `ferrotune trials --format json` prints them.
fn trials(url: &str, study: &str) -> Vec<Value> {
    let o = on_study("trials", url, study, &["--format", "json"]);
    assert!(o.ok, "{}", o.err);
    o.out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// Creates `study` from `space` and asks its first trial; returns the JSON printed.
fn create_and_ask(url: &str, study: &str, space: &str) -> Value {
    let o = ask(url, study, &creating(space, &["--seed", "1"]));
    assert!(o.ok, "{}", o.err);
    serde_json::from_str(o.out.trim()).expect("one JSON object")
}

#[test]
fn a_shell_loop_of_15_asks_and_tells_completes_15_tpe_trials() {
    let s = Scratch::new("ask-tell", "loop");
    let script = r#"
set -eu
i=0
while [ "$i" -lt 15 ]; do
  eval "$("$FERROTUNE" ask --storage "$URL" --study loop --space "$SPACE" \
          --direction minimize --sampler tpe --seed 7 --format env)"
  value=$(awk -v lr="$FERROTUNE_PARAM_LR" -v layers="$FERROTUNE_PARAM_LAYERS" \
              -v m="${FERROTUNE_PARAM_MOMENTUM:-0}" \
              'BEGIN { x = log(lr) / log(10) + 3; print x * x + (layers - 2) ^ 2 + m }')
  "$FERROTUNE" tell --storage "$URL" --study loop --trial "$FERROTUNE_TRIAL_NUMBER" \
      --value "$value" > /dev/null
  i=$((i + 1))
done
"#;
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("FERROTUNE", BIN)
        .env("URL", &s.url)
        .env("SPACE", example("toml"))
        .current_dir(&s.dir)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let all = trials(&s.url, "loop");
    assert_eq!(all.len(), 15);
    for t in &all {
        assert_eq!(t["state"], "complete", "{t}");
        let params = t["params"].as_object().expect("params");
        let sgd = params["optimizer"] == "sgd";
        assert_eq!(params.contains_key("momentum"), sgd, "{t}");
        assert_eq!(params.contains_key("schedule"), sgd, "{t}");
        assert_eq!(
            params.contains_key("decay_every"),
            params.get("schedule").is_some_and(|s| s == "step"),
            "{t}"
        );
        let lr = params["lr"].as_f64().expect("lr");
        assert!((1e-5..=0.1).contains(&lr), "{t}");
    }
    let o = ferrotune(&["studies", "--storage", &s.url]);
    let row = o.out.lines().find(|l| l.starts_with("loop")).expect("row");
    assert!(row.contains(" 15 ") && row.contains("tpe"), "{row}");
}

#[test]
fn ask_prints_every_parameter_with_null_for_inactive_ones() {
    let s = Scratch::new("ask-tell", "json");
    let space = s.write("space.toml", SMALL);
    let mut seen_null = false;
    let mut seen_value = false;
    for expected in 0..12 {
        let asked = create_and_ask(&s.url, "json", &space);
        assert_eq!(asked["trial"], expected);
        let params = asked["params"].as_object().expect("params");
        let names: Vec<&str> = params.keys().map(String::as_str).collect();
        assert_eq!(names, ["lr", "momentum", "optimizer"]);
        if params["optimizer"] == "sgd" {
            assert!(params["momentum"].is_f64(), "{asked}");
            seen_value = true;
        } else {
            assert!(params["momentum"].is_null(), "{asked}");
            seen_null = true;
        }
    }
    assert!(seen_null && seen_value);
    // The trials stay running until told.
    assert!(trials(&s.url, "json")
        .iter()
        .all(|t| t["state"] == "running"));
}

#[test]
fn the_env_format_sets_inactive_parameters_to_the_empty_string() {
    let s = Scratch::new("ask-tell", "env");
    let space = s.write("space.yaml", "params:\n  opt: {type: categorical, choices: [\"it's\"]}\n  x: {type: int, low: 1, high: 1, when: {opt: nope}}\n");
    // `nope` is not a choice: the file is refused before anything is created.
    let o = ask(&s.url, "env", &creating(&space, &[]));
    o.refused(&["\"nope\" is not one of its choices"]);
    let space = s.write("space.yaml", "params:\n  opt: {type: categorical, choices: [\"it's\", b]}\n  x: {type: int, low: 3, high: 3, when: {opt: b}}\n");
    let o = ask(&s.url, "env", &creating(&space, &["--format", "env"]));
    assert!(o.ok, "{}", o.err);
    let lines: Vec<&str> = o.out.lines().collect();
    assert_eq!(lines[0], "FERROTUNE_TRIAL_NUMBER=0");
    assert!(
        lines[1..] == ["FERROTUNE_PARAM_OPT='it'\\''s'", "FERROTUNE_PARAM_X=''"]
            || lines[1..] == ["FERROTUNE_PARAM_OPT=b", "FERROTUNE_PARAM_X=3"],
        "{lines:?}"
    );
    // The assignments are valid shell.
    let check = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{}\nprintf '%s|%s' \"$FERROTUNE_PARAM_OPT\" \"$FERROTUNE_PARAM_X\"",
            o.out
        ))
        .output()
        .expect("sh");
    let shown = String::from_utf8_lossy(&check.stdout);
    assert!(shown == "it's|" || shown == "b|3", "{shown}");
}

#[test]
fn ask_needs_a_space_and_a_direction_to_create_a_study() {
    let s = Scratch::new("ask-tell", "create");
    let o = ask(&s.url, "s", &[]);
    o.refused(&["hpo.db"]);
    assert!(
        !s.path("hpo.db").exists(),
        "ask without --space created a database"
    );
    let space = s.write("space.toml", SMALL);
    create_and_ask(&s.url, "other", &space);
    let o = ask(&s.url, "s", &["--space", &space]);
    o.refused(&[
        "study `s` not found",
        "pass --space FILE and --direction minimize|maximize",
    ]);
}

#[test]
fn a_later_space_must_match_the_stored_one() {
    let s = Scratch::new("ask-tell", "mismatch");
    let space = s.write("space.toml", SMALL);
    create_and_ask(&s.url, "s", &space);
    // The same space in another format and order is the same space.
    let same = s.write(
        "same.json",
        r#"{"params": {"momentum": {"type": "float", "low": 0, "high": 0.99, "when": {"optimizer": "sgd"}},
                       "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
                       "lr": {"type": "float", "low": 1e-5, "high": 0.1, "log": true}}}"#,
    );
    let o = ask(&s.url, "s", &["--space", &same]);
    assert!(o.ok, "{}", o.err);
    let other = s.write("other.toml", &SMALL.replace("0.99", "0.9"));
    let o = ask(&s.url, "s", &["--space", &other]);
    o.refused(&["study `s` was created with another search space: parameter \"momentum\" is float[0, 0.99] in the stored space but float[0, 0.9] in", "other.toml"]);
    // Without --space, the stored space is used.
    let o = ask(&s.url, "s", &[]);
    assert!(o.ok, "{}", o.err);
    // Options that differ from the stored configuration are the library's conflicts.
    let o = ask(&s.url, "s", &["--direction", "maximize", "--space", &space]);
    o.refused(&["directions"]);
    let o = ask(&s.url, "s", &["--sampler", "random"]);
    o.refused(&["sampler"]);
    let o = ask(&s.url, "s", &["--sampler", "annealing"]);
    o.refused(&["unknown sampler `annealing`"]);
}

#[test]
fn a_study_created_without_a_space_gets_one_from_the_first_ask() {
    let s = Scratch::new("ask-tell", "nospace");
    let o = ferrotune(&["create", "--study", "s", "--storage", &s.url]);
    assert!(o.ok, "{}", o.err);
    let o = ask(&s.url, "s", &[]);
    o.refused(&["study `s` has no stored search space; pass --space FILE"]);
    let space = s.write("space.toml", SMALL);
    let o = ask(&s.url, "s", &["--space", &space]);
    assert!(o.ok, "{}", o.err);
    let o = ask(&s.url, "s", &[]);
    assert!(o.ok && o.out.contains("\"trial\":1"), "{}{}", o.out, o.err);
}

#[test]
fn tell_finishes_a_trial_once_and_names_its_state_otherwise() {
    let s = Scratch::new("ask-tell", "tell");
    let space = s.write("space.toml", SMALL);
    for _ in 0..6 {
        create_and_ask(&s.url, "s", &space);
    }
    let tell = |args: &[&str]| on_study("tell", &s.url, "s", args);
    let o = tell(&["--trial", "0", "--value", "-1.5"]);
    assert!(o.ok, "{}", o.err);
    assert_eq!(o.out.trim(), "trial 0 complete (value -1.5)");
    let o = tell(&["--trial", "0", "--value", "2"]);
    o.refused(&["trial #0 of study `s` is complete (value -1.5), not running"]);
    let o = tell(&["--trial", "99", "--value", "2"]);
    o.refused(&["study `s` has no trial #99 (its trials are #0 to #5)"]);
    // The wrong number of values changes nothing.
    let o = tell(&["--trial", "1", "--value", "1", "--value", "2"]);
    o.refused(&["has 1 objective(s) (minimize) but 2 --value was given"]);
    // NaN: the library records the trial as failed with its reason.
    let o = tell(&["--trial", "1", "--value", "nan"]);
    assert!(o.ok, "{}", o.err);
    assert!(
        o.out.starts_with("trial 1 fail (reason: ") && o.out.contains("NaN"),
        "{}",
        o.out
    );
    let o = tell(&["--trial", "1", "--value", "1"]);
    o.refused(&["trial #1 of study `s` is fail (reason: "]);
    // Fail with a reason, pruned, and infinity as a value.
    let o = tell(&[
        "--trial",
        "2",
        "--state",
        "fail",
        "--reason",
        "out of memory",
    ]);
    assert!(o.ok, "{}", o.err);
    assert_eq!(o.out.trim(), "trial 2 fail (reason: out of memory)");
    let o = tell(&["--trial", "3", "--state", "pruned"]);
    assert!(o.ok, "{}", o.err);
    assert_eq!(o.out.trim(), "trial 3 pruned");
    let o = tell(&["--trial", "4", "--state", "pruned", "--reason", "slow"]);
    o.refused(&["--reason is recorded only with --state fail"]);
    let o = tell(&["--trial", "4", "--value", "inf"]);
    assert!(
        o.ok && o.out.contains("complete (value inf)"),
        "{}{}",
        o.out,
        o.err
    );
    // Bad combinations are refused before anything is opened.
    let o = tell(&["--trial", "5", "--value", "1", "--state", "fail"]);
    o.refused(&["cannot be used with"]);
    let o = tell(&["--trial", "5"]);
    o.refused(&["required"]);
    let o = tell(&["--trial", "5", "--value", "abc"]);
    o.refused(&["invalid value 'abc'"]);

    let states: Vec<String> = trials(&s.url, "s")
        .iter()
        .map(|t| t["state"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        states,
        ["complete", "fail", "fail", "pruned", "complete", "running"]
    );
    let o = on_study("tell", &s.url, "missing", &["--trial", "0", "--value", "1"]);
    o.refused(&["study `missing` not found"]);
}

#[test]
fn env_output_refuses_parameters_that_share_a_variable() {
    let s = Scratch::new("ask-tell", "clash");
    let space = s.write(
        "space.json",
        r#"{"params": {"a-b": {"type": "int", "low": 0, "high": 1},
                       "a_b": {"type": "int", "low": 0, "high": 1}}}"#,
    );
    let o = ask(&s.url, "s", &creating(&space, &["--format", "env"]));
    o.refused(&[
        "\"a-b\" and \"a_b\" both map to the environment variable FERROTUNE_PARAM_A_B",
        "--format json",
    ]);
    assert!(
        trials(&s.url, "s").is_empty(),
        "a refused ask left a trial behind"
    );
}
