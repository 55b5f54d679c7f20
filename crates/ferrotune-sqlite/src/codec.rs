//! How values are written to and read from SQL columns.
//!
//! - Objective and intermediate values: a JSON array per row, e.g. `[0.25,-1e-7]`. JSON has no
//!   infinities or NaN, so those are written as the strings `"inf"`, `"-inf"` and `"nan"`:
//!   every `f64` round-trips exactly and the column stays readable by any JSON tool.
//! - Times: seconds since the Unix epoch as REAL (what SQLite's `unixepoch('subsec')` gives).
//! - States: the lower-case names of [`TrialState::as_str`].

use crate::error::Fail;
use ferrotune::{Error, TrialState};
use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Encodes values as a JSON array (non-finite values as strings).
pub(crate) fn encode_values(values: &[f64]) -> String {
    let mut s = String::with_capacity(2 + values.len() * 20);
    s.push('[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        if v.is_nan() {
            s.push_str("\"nan\"");
        } else if v.is_infinite() {
            s.push_str(if *v > 0.0 { "\"inf\"" } else { "\"-inf\"" });
        } else {
            // `{:?}` is the shortest representation that parses back to the same f64, with an
            // exponent for very large or small magnitudes: valid JSON for finite values.
            let _ = write!(s, "{v:?}");
        }
    }
    s.push(']');
    s
}

/// Decodes [`encode_values`]'s output.
pub(crate) fn decode_values(s: &str) -> Result<Vec<f64>, Fail> {
    let bad = || {
        Fail::from(Error::Storage(format!(
            "stored values `{s}` are not a JSON array of numbers"
        )))
    };
    let inner = s
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(bad)?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .map(|item| {
            let item = item.trim();
            let item = item
                .strip_prefix('"')
                .and_then(|i| i.strip_suffix('"'))
                .unwrap_or(item);
            item.parse::<f64>().map_err(|_| bad())
        })
        .collect()
}

/// Seconds since the Unix epoch (negative before it).
pub(crate) fn to_secs(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// The inverse of [`to_secs`]; a value that is not a finite time reads as `None`.
pub(crate) fn from_secs(secs: f64) -> Option<SystemTime> {
    let d = Duration::try_from_secs_f64(secs.abs()).ok()?;
    if secs >= 0.0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    }
}

/// A stored state name.
pub(crate) fn parse_state(s: &str) -> Result<TrialState, Fail> {
    s.parse::<TrialState>().map_err(|_| {
        Fail::from(Error::Storage(format!(
            "unknown trial state `{s}` in the database; was it written by a newer ferrotune? \
             upgrade ferrotune"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_exactly() {
        let cases: Vec<Vec<f64>> = vec![
            vec![],
            vec![0.1],
            vec![1e-300, -2.5e300, 0.0, -0.0, 1.0, 123456789.125],
            vec![
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::MIN_POSITIVE,
                f64::MAX,
            ],
            vec![1.0 / 3.0, std::f64::consts::PI],
        ];
        for values in cases {
            let s = encode_values(&values);
            let back = decode_values(&s).expect("decode");
            assert_eq!(back.len(), values.len());
            for (a, b) in values.iter().zip(&back) {
                assert_eq!(a.to_bits(), b.to_bits(), "{s}");
            }
            if values.iter().all(|v| v.is_finite()) {
                let json: Vec<f64> = serde_json::from_str(&s).expect("valid JSON");
                assert_eq!(json.len(), values.len());
            } else {
                serde_json::from_str::<serde_json::Value>(&s).expect("valid JSON");
            }
        }
        let nan = decode_values(&encode_values(&[f64::NAN])).expect("nan");
        assert!(nan[0].is_nan());
        assert!(decode_values("not json").is_err());
        assert!(decode_values("[1, x]").is_err());
    }

    #[test]
    fn times_round_trip() {
        let now = SystemTime::now();
        let back = from_secs(to_secs(now)).expect("time");
        let diff = back.duration_since(now).unwrap_or_else(|e| e.duration());
        assert!(diff < Duration::from_micros(1));
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(from_secs(to_secs(before)), Some(before));
        assert_eq!(from_secs(f64::NAN), None);
    }
}
