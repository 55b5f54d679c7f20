//! The report protocol: how a program tells `ferrotune run` its metrics, one line on stdout at
//! a time.
//!
//! ```text
//! ferrotune: step=3 val_loss=0.42 acc=0.81      an intermediate value (step 3)
//! ferrotune: val_loss=0.40                      the final value
//! ferrotune: {"step": 3, "val_loss": 0.42}      the same as JSON
//! ```
//!
//! - A report line starts with `ferrotune:` at the very start of the line; every other line is
//!   the program's own output and passes through untouched.
//! - After the prefix come `name=value` pairs separated by spaces, or one JSON object.
//!   `step` (a non-negative integer) makes the line an intermediate report; without it the line
//!   holds final values.
//! - Values are numbers as Python prints them (`0.42`, `1e-05`, `nan`, `inf`, `-inf`); in JSON,
//!   Python's `NaN`, `Infinity` and `-Infinity` (what `json.dumps` writes) are accepted too.
//! - A report line that breaks these rules is not a report: it is kept in the log, counted, and
//!   named in the failure reason if the trial ends without its metric.

use serde_json::Value;
use std::borrow::Cow;

/// What every report line starts with.
pub const PREFIX: &str = "ferrotune:";

/// One parsed report line.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The step of an intermediate report; `None` for final values.
    pub step: Option<u64>,
    /// The metrics, in the order written.
    pub metrics: Vec<(String, f64)>,
}

impl Report {
    /// The value of one metric, if the line has it.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find_map(|(n, v)| (n == name).then_some(*v))
    }
}

/// Why a line that starts with the prefix is not a valid report.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Nothing after the prefix but a step, or nothing at all.
    #[error("no metric on the line; write `ferrotune: val_loss=0.42`")]
    NoMetric,
    /// A word is not `name=value`.
    #[error("`{0}` is not name=value")]
    NotAPair(String),
    /// A value is not a number.
    #[error("the value of `{name}` is `{value}`, not a number")]
    NotANumber {
        /// The metric.
        name: String,
        /// What was written.
        value: String,
    },
    /// The step is not a non-negative integer.
    #[error("step `{0}` is not a non-negative integer")]
    BadStep(String),
    /// A name appears twice on one line.
    #[error("`{0}` appears twice on the line")]
    Duplicate(String),
    /// The JSON form does not parse, or is not an object.
    #[error("invalid JSON report: {0}")]
    Json(String),
}

/// Parses one line of the program's stdout: `None` when it is not a report line (the
/// program's own output), otherwise the report or why it is malformed.
pub fn parse_line(line: &str) -> Option<Result<Report, ReportError>> {
    let rest = line.strip_prefix(PREFIX)?;
    let rest = rest.trim();
    Some(if rest.starts_with('{') {
        parse_json(rest)
    } else {
        parse_pairs(rest)
    })
}

fn parse_pairs(text: &str) -> Result<Report, ReportError> {
    let mut report = Report {
        step: None,
        metrics: Vec::new(),
    };
    let mut seen_step = false;
    for word in text.split_whitespace() {
        let Some((name, value)) = word.split_once('=') else {
            return Err(ReportError::NotAPair(word.to_owned()));
        };
        if name.is_empty() {
            return Err(ReportError::NotAPair(word.to_owned()));
        }
        if name == "step" {
            if seen_step {
                return Err(ReportError::Duplicate("step".into()));
            }
            seen_step = true;
            report.step = Some(parse_step_text(value)?);
            continue;
        }
        let v = parse_number(value).ok_or_else(|| ReportError::NotANumber {
            name: name.to_owned(),
            value: value.to_owned(),
        })?;
        push_metric(&mut report, name, v)?;
    }
    finish(report)
}

fn parse_json(text: &str) -> Result<Report, ReportError> {
    let value: Value =
        serde_json::from_str(&relaxed_json(text)).map_err(|e| ReportError::Json(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(ReportError::Json("not an object".into()));
    };
    let mut report = Report {
        step: None,
        metrics: Vec::new(),
    };
    for (name, value) in map {
        if name == "step" {
            report.step = Some(match &value {
                Value::Number(n) => n
                    .as_u64()
                    .or_else(|| step_of(n.as_f64()))
                    .ok_or_else(|| ReportError::BadStep(n.to_string()))?,
                other => return Err(ReportError::BadStep(other.to_string())),
            });
            continue;
        }
        let v = match &value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => non_finite(s),
            _ => None,
        }
        .ok_or_else(|| ReportError::NotANumber {
            name: name.clone(),
            value: value.to_string(),
        })?;
        push_metric(&mut report, &name, v)?;
    }
    finish(report)
}

fn push_metric(report: &mut Report, name: &str, value: f64) -> Result<(), ReportError> {
    if report.metrics.iter().any(|(n, _)| n == name) {
        return Err(ReportError::Duplicate(name.to_owned()));
    }
    report.metrics.push((name.to_owned(), value));
    Ok(())
}

fn finish(report: Report) -> Result<Report, ReportError> {
    if report.metrics.is_empty() {
        Err(ReportError::NoMetric)
    } else {
        Ok(report)
    }
}

/// A number as programs print them: Rust's and Python's float syntax, `nan`/`inf` in any case.
fn parse_number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().or_else(|| non_finite(text))
}

/// `NaN`, `Infinity`, `-Infinity` (JSON extensions) and the like, in any case.
fn non_finite(text: &str) -> Option<f64> {
    match text.to_ascii_lowercase().as_str() {
        "nan" | "+nan" | "-nan" => Some(f64::NAN),
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

fn parse_step_text(text: &str) -> Result<u64, ReportError> {
    text.parse::<u64>()
        .ok()
        .or_else(|| step_of(text.parse::<f64>().ok()))
        .ok_or_else(|| ReportError::BadStep(text.to_owned()))
}

/// A step written as a float (`3.0`, from an epoch counter kept in a float) is accepted when
/// it is a whole, non-negative number.
fn step_of(x: Option<f64>) -> Option<u64> {
    let x = x?;
    (x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x < 9.0e15).then_some(x as u64)
}

/// JSON as Python's `json.dumps` writes it: bare `NaN`, `Infinity` and `-Infinity` outside
/// strings become strings (read back as numbers by [`parse_json`]).
fn relaxed_json(text: &str) -> Cow<'_, str> {
    if !(text.contains("NaN") || text.contains("Infinity")) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else {
            let token = ["-Infinity", "Infinity", "NaN"]
                .into_iter()
                .find(|t| rest.starts_with(t));
            if let Some(t) = token {
                out.push('"');
                out.push_str(t);
                out.push('"');
                rest = &rest[t.len()..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Report {
        parse_line(line)
            .expect("a report line")
            .unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    fn err(line: &str) -> ReportError {
        parse_line(line)
            .expect("a report line")
            .expect_err("malformed")
    }

    #[test]
    fn other_lines_are_not_reports() {
        for line in [
            "",
            "epoch 3 loss 0.4",
            " ferrotune: val_loss=0.4",
            "Ferrotune: val_loss=0.4",
            "ferrotune val_loss=0.4",
            "INFO ferrotune: val_loss=0.4",
        ] {
            assert_eq!(parse_line(line), None, "{line}");
        }
    }

    #[test]
    fn intermediate_and_final_pairs() {
        assert_eq!(
            ok("ferrotune: step=3 val_loss=0.42"),
            Report {
                step: Some(3),
                metrics: vec![("val_loss".into(), 0.42)]
            }
        );
        assert_eq!(
            ok("ferrotune: val_loss=0.40"),
            Report {
                step: None,
                metrics: vec![("val_loss".into(), 0.40)]
            }
        );
        // Spacing, order, several metrics, names with punctuation, trailing CR.
        let r = ok("ferrotune:val/loss=1e-05   acc=0.9 step=7\r");
        assert_eq!(r.step, Some(7));
        assert_eq!(r.get("val/loss"), Some(1e-5));
        assert_eq!(r.get("acc"), Some(0.9));
        assert_eq!(r.get("step"), None);
        assert_eq!(ok("ferrotune: step=2.0 x=1").step, Some(2));
    }

    #[test]
    fn non_finite_values_as_python_prints_them() {
        let r = ok("ferrotune: a=nan b=inf c=-inf d=NaN e=-Infinity");
        assert!(r.get("a").unwrap().is_nan());
        assert_eq!(r.get("b"), Some(f64::INFINITY));
        assert_eq!(r.get("c"), Some(f64::NEG_INFINITY));
        assert!(r.get("d").unwrap().is_nan());
        assert_eq!(r.get("e"), Some(f64::NEG_INFINITY));
    }

    #[test]
    fn the_json_form() {
        assert_eq!(
            ok(r#"ferrotune: {"step": 3, "val_loss": 0.42}"#),
            Report {
                step: Some(3),
                metrics: vec![("val_loss".into(), 0.42)]
            }
        );
        let r = ok(r#"ferrotune: {"val_loss": 0.4, "acc": 1}"#);
        assert_eq!(r.step, None);
        assert_eq!(r.get("acc"), Some(1.0));
        // What json.dumps writes for non-finite floats, but not inside strings.
        let r = ok(r#"ferrotune: {"step": 1.0, "loss": NaN, "g": -Infinity, "h": Infinity}"#);
        assert_eq!(r.step, Some(1));
        assert!(r.get("loss").unwrap().is_nan());
        assert_eq!(r.get("g"), Some(f64::NEG_INFINITY));
        assert_eq!(r.get("h"), Some(f64::INFINITY));
        assert!(matches!(
            err(r#"ferrotune: {"NaN loss": "x"}"#),
            ReportError::NotANumber { .. }
        ));
    }

    #[test]
    fn garbage_after_the_prefix_is_malformed() {
        assert_eq!(err("ferrotune:"), ReportError::NoMetric);
        assert_eq!(err("ferrotune: step=3"), ReportError::NoMetric);
        assert_eq!(
            err("ferrotune: hello world"),
            ReportError::NotAPair("hello".into())
        );
        assert_eq!(err("ferrotune: =3"), ReportError::NotAPair("=3".into()));
        assert_eq!(
            err("ferrotune: loss=abc"),
            ReportError::NotANumber {
                name: "loss".into(),
                value: "abc".into()
            }
        );
        assert_eq!(
            err("ferrotune: loss="),
            ReportError::NotANumber {
                name: "loss".into(),
                value: String::new()
            }
        );
        assert_eq!(
            err("ferrotune: step=-1 x=1"),
            ReportError::BadStep("-1".into())
        );
        assert_eq!(
            err("ferrotune: step=1.5 x=1"),
            ReportError::BadStep("1.5".into())
        );
        assert_eq!(
            err("ferrotune: x=1 x=2"),
            ReportError::Duplicate("x".into())
        );
        assert_eq!(
            err("ferrotune: step=1 step=2 x=1"),
            ReportError::Duplicate("step".into())
        );
        assert!(matches!(err("ferrotune: {oops"), ReportError::Json(_)));
        assert!(matches!(
            err("ferrotune: {\"x\": [1]}"),
            ReportError::NotANumber { .. }
        ));
        assert!(matches!(
            err("ferrotune: {\"x\": null}"),
            ReportError::NotANumber { .. }
        ));
        assert!(matches!(
            err("ferrotune: {\"step\": -2, \"x\": 1}"),
            ReportError::BadStep(_)
        ));
        assert!(matches!(err("ferrotune: {}"), ReportError::NoMetric));
    }
}
