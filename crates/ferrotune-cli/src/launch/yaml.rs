//! A small YAML writer for manifests: block style, keys in the order given, and strings
//! quoted whenever a YAML 1.1 or 1.2 reader could take them for anything but a string.
//!
//! Kubernetes reads manifests with a YAML 1.1 parser, where `yes`, `on` or `off` are booleans:
//! a study called `on` written plainly would reach the API server as `true`. A general YAML
//! serializer follows YAML 1.2 and writes those plainly, so manifests are written here, and
//! the tests read them back with `yaml_serde`.

/// A YAML value.
#[derive(Clone, Debug, PartialEq)]
pub enum Yaml {
    /// A mapping, in this order.
    Map(Vec<(String, Yaml)>),
    /// A sequence.
    List(Vec<Yaml>),
    /// A string.
    Str(String),
    /// A non-negative integer.
    Int(u64),
    /// A boolean.
    Bool(bool),
}

impl Yaml {
    /// A mapping from `(key, value)` pairs.
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Yaml)>) -> Yaml {
        Yaml::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A string.
    pub fn str(s: impl Into<String>) -> Yaml {
        Yaml::Str(s.into())
    }

    /// A list of strings.
    pub fn strs<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Yaml {
        Yaml::List(items.into_iter().map(|s| Yaml::Str(s.into())).collect())
    }

    /// The document: one line per scalar, two spaces per level, ending with a newline.
    pub fn to_document(&self) -> String {
        let mut out = String::new();
        match self {
            Yaml::Map(entries) if !entries.is_empty() => write_map(&mut out, entries, 0),
            Yaml::List(items) if !items.is_empty() => write_list(&mut out, items, 0),
            scalar => {
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
        out
    }
}

/// A scalar, or an empty collection, on one line.
fn inline(v: &Yaml) -> String {
    match v {
        Yaml::Str(s) => scalar(s),
        Yaml::Int(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Map(_) => "{}".to_owned(),
        Yaml::List(_) => "[]".to_owned(),
    }
}

/// Whether a value goes on its key's line.
fn is_inline(v: &Yaml) -> bool {
    match v {
        Yaml::Map(m) => m.is_empty(),
        Yaml::List(l) => l.is_empty(),
        _ => true,
    }
}

fn write_map(out: &mut String, entries: &[(String, Yaml)], indent: usize) {
    for (key, value) in entries {
        push_indent(out, indent);
        write_entry(out, key, value, indent);
    }
}

/// `key: value`, the cursor already indented; nested blocks two spaces deeper.
fn write_entry(out: &mut String, key: &str, value: &Yaml, indent: usize) {
    out.push_str(&scalar(key));
    out.push(':');
    if is_inline(value) {
        out.push(' ');
        out.push_str(&inline(value));
        out.push('\n');
        return;
    }
    out.push('\n');
    match value {
        Yaml::Map(m) => write_map(out, m, indent + 2),
        Yaml::List(l) => write_list(out, l, indent + 2),
        _ => {}
    }
}

fn write_list(out: &mut String, items: &[Yaml], indent: usize) {
    for item in items {
        push_indent(out, indent);
        out.push_str("- ");
        match item {
            Yaml::Map(m) if !m.is_empty() => {
                // The first entry shares the dash's line; the rest line up under it.
                for (i, (key, value)) in m.iter().enumerate() {
                    if i > 0 {
                        push_indent(out, indent + 2);
                    }
                    write_entry(out, key, value, indent + 2);
                }
            }
            Yaml::List(l) if !l.is_empty() => {
                out.push('\n');
                write_list(out, l, indent + 2);
            }
            scalar => {
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

fn push_indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Words a YAML 1.1 reader takes for a boolean or null (compared ignoring case).
const RESERVED: [&str; 10] = [
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
];

/// A string as a YAML scalar: plain when it starts with a letter (or `--` and a letter: an
/// option), holds only letters, digits and `-_./`, and is no reserved word; else double-quoted, with `"` and `\\` escaped, and
/// control characters, line and paragraph separators and byte-order marks written as `\\u`
/// escapes (other characters as they are).
pub fn scalar(s: &str) -> String {
    let head = s.strip_prefix("--").unwrap_or(s);
    let plain = head.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s));
    if plain {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control()
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> yaml_serde::Value {
        yaml_serde::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn documents_read_back_as_written() {
        let doc = Yaml::map([
            ("apiVersion", Yaml::str("batch/v1")),
            (
                "spec",
                Yaml::map([
                    ("n", Yaml::Int(4)),
                    ("flag", Yaml::Bool(true)),
                    ("empty", Yaml::map(Vec::<(String, Yaml)>::new())),
                    ("none", Yaml::List(vec![])),
                    (
                        "items",
                        Yaml::List(vec![
                            Yaml::map([
                                ("name", Yaml::str("a")),
                                ("args", Yaml::strs(["x", "on"])),
                            ]),
                            Yaml::str("yes"),
                            Yaml::strs(["nested"]),
                        ]),
                    ),
                ]),
            ),
        ]);
        let text = doc.to_document();
        let v = parse(&text);
        assert_eq!(v["apiVersion"].as_str(), Some("batch/v1"));
        assert_eq!(v["spec"]["n"].as_u64(), Some(4));
        assert_eq!(v["spec"]["flag"].as_bool(), Some(true));
        assert_eq!(v["spec"]["items"][0]["name"].as_str(), Some("a"));
        assert_eq!(v["spec"]["items"][0]["args"][1].as_str(), Some("on"));
        assert_eq!(v["spec"]["items"][1].as_str(), Some("yes"));
        assert_eq!(v["spec"]["items"][2][0].as_str(), Some("nested"));
        assert!(text.contains("- \"yes\"\n"), "{text}");
    }

    #[test]
    fn ambiguous_strings_are_quoted() {
        for s in [
            "on", "Off", "YES", "y", "null", "~", "", "1", "0x1f", "1e3", "1_000", "16Gi", "500m",
            ".inf", "1:30", "a: b", "#x", "- x", "x #y", "'q'", "\"q\"", "é", "a\nb", "*x", "&x",
            "-", "--", "---", "-1", "--1", "-x",
        ] {
            assert!(scalar(s).starts_with('"'), "{s:?} -> {}", scalar(s));
        }
        for s in [
            "batch/v1",
            "Job",
            "nvidia.com/gpu",
            "ferrotune-my-study",
            "OnFailure",
            "--study",
            "--gpus-per-trial",
            "--on",
        ] {
            assert_eq!(scalar(s), s);
        }
    }

    proptest! {
        #[test]
        fn any_string_reads_back_as_the_same_string(
            s in "\\PC{0,40}|[onyesfalsetru0-9.:eE_-]{0,6}|[\\x00-\\x{a0}\\x{2028}\\x{feff}\\x{fffe}]{0,8}"
        ) {
            let text = Yaml::map([("k", Yaml::str(s.clone())), ("l", Yaml::strs([s.clone()]))])
                .to_document();
            let v = parse(&text);
            prop_assert_eq!(v["k"].as_str(), Some(s.as_str()), "{}", text);
            prop_assert_eq!(v["l"][0].as_str(), Some(s.as_str()), "{}", text);
        }
    }
}
