//! Exporting trials as CSV (one row per trial, parameters flattened into columns) and JSON
//! Lines (one object per trial), for spreadsheets, pandas and other tools.

use crate::error::{Error, Result};
use crate::trial::FrozenTrial;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::time::SystemTime;

/// A time as RFC 3339 UTC with microseconds (`2026-11-23T11:28:14.123456Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Hinnant, "chrono-Compatible Low-Level Date
    // Algorithms", civil_from_days).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_micros()
    )
}

fn intermediate_json(t: &FrozenTrial) -> Value {
    let map: Map<String, Value> = t
        .intermediate_values
        .iter()
        .map(|(step, v)| {
            let v = if v.len() == 1 { json!(v[0]) } else { json!(v) };
            (step.to_string(), v)
        })
        .collect();
    Value::Object(map)
}

/// The JSON object of one trial, as written to JSON Lines.
pub fn trial_json(t: &FrozenTrial) -> Value {
    json!({
        "number": t.number,
        "state": t.state,
        "values": t.values,
        "params": t.params,
        "datetime_start": t.datetime_start.map(rfc3339),
        "datetime_complete": t.datetime_complete.map(rfc3339),
        "duration_s": t.duration().map(|d| d.as_secs_f64()),
        "intermediate_values": intermediate_json(t),
        "user_attrs": t.user_attrs,
        "fail_reason": t.fail_reason,
    })
}

/// Writes one JSON object per trial, one per line.
pub fn write_jsonl<'a>(
    trials: impl IntoIterator<Item = &'a FrozenTrial>,
    mut out: impl Write,
) -> Result<()> {
    for t in trials {
        serde_json::to_writer(&mut out, &trial_json(t))?;
        writeln!(out).map_err(io)?;
    }
    Ok(())
}

fn io(e: std::io::Error) -> Error {
    Error::Storage(format!("cannot write the export: {e}"))
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Writes a header and one row per trial: `number, state, value` (or `value_0, value_1, …`
/// for several objectives), times, duration, one `params_<name>` column per parameter seen in
/// any trial (empty where a conditional parameter is absent), one `user_attrs_<key>` column
/// per attribute, the intermediate values as a JSON object, and the fail reason.
pub fn write_csv<'a>(
    trials: impl IntoIterator<Item = &'a FrozenTrial>,
    n_objectives: usize,
    mut out: impl Write,
) -> Result<()> {
    let trials: Vec<&FrozenTrial> = trials.into_iter().collect();
    let params: BTreeSet<&str> = trials.iter().flat_map(|t| t.params.names()).collect();
    let attrs: BTreeSet<&str> = trials
        .iter()
        .flat_map(|t| t.user_attrs.keys().map(String::as_str))
        .collect();
    let mut header = vec!["number".to_owned(), "state".to_owned()];
    if n_objectives == 1 {
        header.push("value".into());
    } else {
        header.extend((0..n_objectives).map(|i| format!("value_{i}")));
    }
    header.extend(["datetime_start", "datetime_complete", "duration_s"].map(String::from));
    header.extend(params.iter().map(|p| format!("params_{p}")));
    header.extend(attrs.iter().map(|a| format!("user_attrs_{a}")));
    header.extend(["intermediate_values", "fail_reason"].map(String::from));
    let line = |fields: Vec<String>| {
        fields
            .iter()
            .map(|f| csv_field(f))
            .collect::<Vec<_>>()
            .join(",")
    };
    writeln!(out, "{}", line(header)).map_err(io)?;
    for t in trials {
        let mut row = vec![t.number.to_string(), t.state.to_string()];
        for i in 0..n_objectives {
            row.push(
                t.values
                    .as_ref()
                    .and_then(|v| v.get(i))
                    .map(f64::to_string)
                    .unwrap_or_default(),
            );
        }
        row.push(t.datetime_start.map(rfc3339).unwrap_or_default());
        row.push(t.datetime_complete.map(rfc3339).unwrap_or_default());
        row.push(
            t.duration()
                .map(|d| d.as_secs_f64().to_string())
                .unwrap_or_default(),
        );
        for p in &params {
            row.push(
                t.params
                    .get(p)
                    .map(|v| plain(&json!(v)))
                    .unwrap_or_default(),
            );
        }
        for a in &attrs {
            row.push(t.user_attrs.get(*a).map(plain).unwrap_or_default());
        }
        row.push(intermediate_json(t).to_string());
        row.push(t.fail_reason.clone().unwrap_or_default());
        writeln!(out, "{}", line(row)).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Optimize, Study, Trial, TrialError};
    use std::time::Duration;

    #[test]
    fn rfc3339_known_instants() {
        let at = |s: u64| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00.000000Z");
        assert_eq!(at(1_795_433_294), "2026-11-23T11:28:14.000000Z");
    }

    fn study() -> Study {
        let s = Study::builder().seed(2).build().unwrap();
        s.optimize(
            |t: &mut Trial| -> Result<f64, TrialError> {
                let kind: &str = t.suggest_categorical("kind", &["a,b", "plain"])?;
                if kind == "plain" {
                    t.suggest_int("n", 1, 3)?;
                }
                t.set_user_attr("note", "say \"hi\"")?;
                t.report(0, 1.5)?;
                t.report(1, 0.5)?;
                Ok(0.25)
            },
            Optimize::trials(6),
        )
        .unwrap();
        s
    }

    #[test]
    fn csv_flattens_params_and_quotes_fields() {
        let s = study();
        let trials = s.trials().unwrap();
        let mut out = Vec::new();
        write_csv(trials.iter().map(|t| t.as_ref()), 1, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "number,state,value,datetime_start,datetime_complete,duration_s,params_kind,params_n,user_attrs_note,intermediate_values,fail_reason"
        );
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), 6);
        for (row, t) in rows.iter().zip(&trials) {
            assert!(
                row.starts_with(&format!("{},complete,0.25,", t.number)),
                "{row}"
            );
            assert!(row.contains(r#""say ""hi""""#), "{row}");
            assert!(row.contains(r#""{""0"":1.5,""1"":0.5}""#), "{row}");
            if t.params["kind"].as_str() == Some("a,b") {
                assert!(
                    row.contains(r#","a,b",,"#) || row.contains(r#""a,b""#),
                    "{row}"
                );
            }
        }
    }

    #[test]
    fn jsonl_has_one_object_per_trial() {
        let s = study();
        let trials = s.trials().unwrap();
        let mut out = Vec::new();
        write_jsonl(trials.iter().map(|t| t.as_ref()), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let objects: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(objects.len(), 6);
        for (o, t) in objects.iter().zip(&trials) {
            assert_eq!(o["number"], t.number);
            assert_eq!(o["state"], "complete");
            assert_eq!(o["values"], json!([0.25]));
            assert_eq!(o["intermediate_values"], json!({"0": 1.5, "1": 0.5}));
            assert_eq!(o["params"]["kind"], json!(t.params["kind"]));
            assert!(o["duration_s"].as_f64().unwrap() >= 0.0);
            assert!(o["datetime_start"].as_str().unwrap().ends_with('Z'));
        }
    }
}
