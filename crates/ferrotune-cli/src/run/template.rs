//! The command template: the program and its arguments, with `{name}` where a parameter's value
//! goes.
//!
//! - `{lr}` is replaced by the trial's value of `lr` anywhere inside an argument
//!   (`--lr={lr}`, `{a}x{b}`). A parameter that is inactive in the trial (its `when` condition
//!   fails) is an error there; since that is a mistake in the command, [`CommandTemplate::check`]
//!   refuses a plain `{name}` of a conditional parameter before the first trial.
//! - `{lr?}` is the same, except that when the parameter is inactive the whole argument is left
//!   out: write `--momentum={momentum?}` so the flag goes with its value.
//! - `{{` and `}}` are a literal `{` and `}`.
//!
//! Values are written as in the parameters' JSON file: strings as they are, integers in
//! decimal, floats in their shortest round-trip form (`0.001`, `1e-7`, `2.0`), booleans as
//! `true`/`false`.

use crate::space_file::SearchSpaceFile;
use ferrotune::ParamValue;
use std::collections::BTreeMap;
use std::fmt;

/// What is wrong with a command template, or with rendering it for a trial.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum TemplateError {
    /// No program was given.
    #[error("the command is empty; give the program and its arguments after `--`")]
    Empty,
    /// A `{` without its `}`.
    #[error(
        "argument {index} `{arg}`: `{{` at character {at} is never closed; write `{{{{` for a \
         literal brace"
    )]
    Unclosed {
        /// The argument's position (0 is the program).
        index: usize,
        /// The argument.
        arg: String,
        /// The character position of the brace (from 1).
        at: usize,
    },
    /// A `}` that closes nothing.
    #[error(
        "argument {index} `{arg}`: `}}` at character {at} closes nothing; write `}}}}` for a \
         literal brace"
    )]
    Unopened {
        /// The argument's position.
        index: usize,
        /// The argument.
        arg: String,
        /// The character position of the brace (from 1).
        at: usize,
    },
    /// `{}` or `{?}`.
    #[error(
        "argument {index} `{arg}`: `{{}}` names no parameter; write `{{lr}}` for the value of lr"
    )]
    NoName {
        /// The argument's position.
        index: usize,
        /// The argument.
        arg: String,
    },
    /// The program itself may not vanish.
    #[error(
        "the program `{arg}` uses an optional `{{…?}}` placeholder; the program cannot be left \
         out"
    )]
    OptionalProgram {
        /// The program argument.
        arg: String,
    },
    /// A placeholder names no parameter of the search space.
    #[error("`{{{name}}}` names no parameter of the search space (its parameters: {known})")]
    UnknownParam {
        /// The name in braces.
        name: String,
        /// The space's parameters.
        known: String,
    },
    /// A plain placeholder names a conditional parameter, which some trials lack.
    #[error(
        "`{{{name}}}` names the conditional parameter {name} (active only when {when}), which \
         trials where it is inactive cannot fill; write `{{{name}?}}` to leave the argument out \
         then (e.g. `--{name}={{{name}?}}`), or read it from the environment"
    )]
    Conditional {
        /// The parameter.
        name: String,
        /// Its condition, in words.
        when: String,
    },
    /// Rendering: the parameter is inactive in this trial.
    #[error(
        "parameter {name} is inactive in this trial, but `{{{name}}}` in argument {index} needs \
         a value; write `{{{name}?}}` to leave the argument out"
    )]
    Inactive {
        /// The parameter.
        name: String,
        /// The argument's position.
        index: usize,
    },
}

/// One piece of an argument.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Param { name: String, optional: bool },
}

/// One argument: literal text and placeholders.
#[derive(Clone, Debug, PartialEq)]
struct ArgTemplate {
    pieces: Vec<Piece>,
}

impl ArgTemplate {
    fn parse(index: usize, arg: &str) -> Result<ArgTemplate, TemplateError> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = arg.chars().enumerate().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().is_some_and(|&(_, d)| d == '{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek().is_some_and(|&(_, d)| d == '}') => {
                    chars.next();
                    text.push('}');
                }
                '}' => {
                    return Err(TemplateError::Unopened {
                        index,
                        arg: arg.to_owned(),
                        at: i + 1,
                    })
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, d) in chars.by_ref() {
                        if d == '}' {
                            closed = true;
                            break;
                        }
                        name.push(d);
                    }
                    if !closed || name.contains('{') {
                        return Err(TemplateError::Unclosed {
                            index,
                            arg: arg.to_owned(),
                            at: i + 1,
                        });
                    }
                    let (name, optional) = match name.strip_suffix('?') {
                        Some(n) => (n.to_owned(), true),
                        None => (name, false),
                    };
                    if name.is_empty() {
                        return Err(TemplateError::NoName {
                            index,
                            arg: arg.to_owned(),
                        });
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Param { name, optional });
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() || pieces.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(ArgTemplate { pieces })
    }

    fn params(&self) -> impl Iterator<Item = (&str, bool)> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Param { name, optional } => Some((name.as_str(), *optional)),
            Piece::Text(_) => None,
        })
    }
}

/// A program and its arguments with `{name}` placeholders, parsed once and rendered per trial.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandTemplate {
    source: Vec<String>,
    args: Vec<ArgTemplate>,
}

impl CommandTemplate {
    /// Parses the words after `--`; the first is the program.
    pub fn parse(words: &[String]) -> Result<CommandTemplate, TemplateError> {
        if words.is_empty() {
            return Err(TemplateError::Empty);
        }
        let args = words
            .iter()
            .enumerate()
            .map(|(i, w)| ArgTemplate::parse(i, w))
            .collect::<Result<Vec<_>, _>>()?;
        if args[0].params().any(|(_, optional)| optional) {
            return Err(TemplateError::OptionalProgram {
                arg: words[0].clone(),
            });
        }
        Ok(CommandTemplate {
            source: words.to_vec(),
            args,
        })
    }

    /// The words as written (what is stored with the study).
    pub fn words(&self) -> &[String] {
        &self.source
    }

    /// The parameter names the template uses, with whether the use is optional (`{name?}`).
    pub fn params(&self) -> impl Iterator<Item = (&str, bool)> {
        self.args.iter().flat_map(ArgTemplate::params)
    }

    /// Checks the template against the search space before any trial runs: every name must be
    /// a parameter, and a plain `{name}` must not name a conditional parameter.
    pub fn check(&self, space: &SearchSpaceFile) -> Result<(), TemplateError> {
        for (name, optional) in self.params() {
            let Some(param) = space.get(name) else {
                return Err(TemplateError::UnknownParam {
                    name: name.to_owned(),
                    known: space
                        .params()
                        .iter()
                        .map(|p| p.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            if let (false, Some(when)) = (optional, param.conditions_text()) {
                return Err(TemplateError::Conditional {
                    name: name.to_owned(),
                    when,
                });
            }
        }
        Ok(())
    }

    /// The argument list for a trial with these parameters (`None`: inactive). Arguments with
    /// an inactive `{name?}` are left out; an inactive plain `{name}` is an error.
    pub fn render(
        &self,
        params: &BTreeMap<String, Option<ParamValue>>,
    ) -> Result<Vec<String>, TemplateError> {
        let mut out = Vec::with_capacity(self.args.len());
        'args: for (index, arg) in self.args.iter().enumerate() {
            let mut word = String::new();
            for piece in &arg.pieces {
                match piece {
                    Piece::Text(t) => word.push_str(t),
                    Piece::Param { name, optional } => {
                        match params.get(name).and_then(Option::as_ref) {
                            Some(v) => word.push_str(&value_text(v)),
                            None if *optional => continue 'args,
                            None => {
                                return Err(TemplateError::Inactive {
                                    name: name.clone(),
                                    index,
                                })
                            }
                        }
                    }
                }
            }
            out.push(word);
        }
        Ok(out)
    }
}

impl fmt::Display for CommandTemplate {
    /// The words, shell-quoted where needed: `python train.py --lr {lr}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_words(&self.source))
    }
}

/// A parameter value as text: strings as they are, numbers as in JSON (`3`, `0.001`, `1e-7`,
/// `2.0`), booleans as `true`/`false`. Used for templates and environment variables alike.
pub fn value_text(value: &ParamValue) -> String {
    match value {
        ParamValue::Str(s) => s.clone(),
        ParamValue::Int(i) => i.to_string(),
        ParamValue::Bool(b) => b.to_string(),
        ParamValue::Float(x) => serde_json::to_string(x).unwrap_or_else(|_| x.to_string()),
    }
}

/// Words joined into one shell command line, each quoted when it holds anything but plain
/// characters (for messages and logs that a user may copy into a shell).
pub fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            let plain = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.,:/+=@%{}?".contains(c));
            if plain {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space_file::Format;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| (*w).to_owned()).collect()
    }

    fn space() -> SearchSpaceFile {
        SearchSpaceFile::from_str(
            r#"
[params.lr]
type = "float"
low = 1e-5
high = 0.1
log = true
[params.layers]
type = "int"
low = 1
high = 4
[params.optimizer]
type = "categorical"
choices = ["adam", "sgd"]
[params.momentum]
type = "float"
low = 0.0
high = 0.99
when = { optimizer = "sgd" }
"#,
            Format::Toml,
        )
        .expect("space")
    }

    fn params(momentum: Option<f64>) -> BTreeMap<String, Option<ParamValue>> {
        let mut p = BTreeMap::new();
        p.insert("lr".to_owned(), Some(ParamValue::Float(1e-5)));
        p.insert("layers".to_owned(), Some(ParamValue::Int(3)));
        p.insert(
            "optimizer".to_owned(),
            Some(ParamValue::Str(
                if momentum.is_some() { "sgd" } else { "adam" }.into(),
            )),
        );
        p.insert("momentum".to_owned(), momentum.map(ParamValue::Float));
        p
    }

    #[test]
    fn placeholders_are_replaced_anywhere_in_an_argument() {
        let t = CommandTemplate::parse(&words(&[
            "python",
            "train.py",
            "--lr",
            "{lr}",
            "--layers={layers}",
            "{optimizer}-{layers}x",
        ]))
        .unwrap();
        t.check(&space()).unwrap();
        let argv = t.render(&params(None)).unwrap();
        assert_eq!(
            argv,
            words(&[
                "python",
                "train.py",
                "--lr",
                "0.00001",
                "--layers=3",
                "adam-3x"
            ])
        );
    }

    #[test]
    fn optional_placeholders_drop_their_argument_when_inactive() {
        let t = CommandTemplate::parse(&words(&["prog", "--momentum={momentum?}", "--lr={lr}"]))
            .unwrap();
        t.check(&space()).unwrap();
        assert_eq!(
            t.render(&params(None)).unwrap(),
            words(&["prog", "--lr=0.00001"])
        );
        assert_eq!(
            t.render(&params(Some(0.5))).unwrap(),
            words(&["prog", "--momentum=0.5", "--lr=0.00001"])
        );
    }

    #[test]
    fn an_inactive_plain_placeholder_is_an_error() {
        let t = CommandTemplate::parse(&words(&["prog", "--momentum", "{momentum}"])).unwrap();
        let err = t.render(&params(None)).unwrap_err();
        assert_eq!(
            err,
            TemplateError::Inactive {
                name: "momentum".into(),
                index: 2
            }
        );
        assert!(err.to_string().contains("{momentum?}"), "{err}");
        // Active, it renders.
        assert_eq!(
            t.render(&params(Some(0.25))).unwrap(),
            words(&["prog", "--momentum", "0.25"])
        );
        // And the check refuses it before any trial, naming the condition.
        let err = t.check(&space()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("optimizer = \"sgd\"") && msg.contains("{momentum?}"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_names_are_refused_with_the_known_ones() {
        let t = CommandTemplate::parse(&words(&["prog", "--lr={learning_rate}"])).unwrap();
        let msg = t.check(&space()).unwrap_err().to_string();
        assert!(msg.contains("{learning_rate}"), "{msg}");
        assert!(msg.contains("lr, layers, optimizer, momentum"), "{msg}");
        let t = CommandTemplate::parse(&words(&["prog", "{nope?}"])).unwrap();
        assert!(matches!(
            t.check(&space()),
            Err(TemplateError::UnknownParam { .. })
        ));
    }

    #[test]
    fn doubled_braces_are_literal() {
        let t =
            CommandTemplate::parse(&words(&["sh", "-c", "echo {{\"lr\": {lr}}} }}{{"])).unwrap();
        assert_eq!(t.params().count(), 1);
        assert_eq!(
            t.render(&params(None)).unwrap()[2],
            "echo {\"lr\": 0.00001} }{"
        );
        let plain = CommandTemplate::parse(&words(&["echo", "{{}}"])).unwrap();
        assert_eq!(plain.render(&params(None)).unwrap(), words(&["echo", "{}"]));
    }

    #[test]
    fn malformed_braces_name_the_argument_and_position() {
        let err = CommandTemplate::parse(&words(&["prog", "--lr={lr"])).unwrap_err();
        assert_eq!(
            err,
            TemplateError::Unclosed {
                index: 1,
                arg: "--lr={lr".into(),
                at: 6
            }
        );
        let err = CommandTemplate::parse(&words(&["prog", "a}b"])).unwrap_err();
        assert!(
            matches!(err, TemplateError::Unopened { at: 2, .. }),
            "{err}"
        );
        let err = CommandTemplate::parse(&words(&["prog", "{a{b}"])).unwrap_err();
        assert!(matches!(err, TemplateError::Unclosed { .. }), "{err}");
        let err = CommandTemplate::parse(&words(&["prog", "{}"])).unwrap_err();
        assert!(matches!(err, TemplateError::NoName { .. }), "{err}");
        let err = CommandTemplate::parse(&words(&["prog", "{?}"])).unwrap_err();
        assert!(matches!(err, TemplateError::NoName { .. }), "{err}");
        assert_eq!(CommandTemplate::parse(&[]), Err(TemplateError::Empty));
        let err = CommandTemplate::parse(&words(&["{prog?}"])).unwrap_err();
        assert!(matches!(err, TemplateError::OptionalProgram { .. }));
    }

    #[test]
    fn empty_arguments_survive() {
        let t = CommandTemplate::parse(&words(&["prog", "", "x"])).unwrap();
        assert_eq!(t.render(&params(None)).unwrap(), words(&["prog", "", "x"]));
    }

    #[test]
    fn values_are_written_as_in_json() {
        assert_eq!(value_text(&ParamValue::Float(0.001)), "0.001");
        assert_eq!(value_text(&ParamValue::Float(2.0)), "2.0");
        assert_eq!(value_text(&ParamValue::Float(1e-7)), "1e-7");
        assert_eq!(value_text(&ParamValue::Int(-4)), "-4");
        assert_eq!(value_text(&ParamValue::Bool(true)), "true");
        assert_eq!(value_text(&ParamValue::Str("a b".into())), "a b");
        // Floats round-trip exactly.
        let x = 0.123_456_789_012_345_67_f64;
        assert_eq!(
            value_text(&ParamValue::Float(x))
                .parse::<f64>()
                .unwrap()
                .to_bits(),
            x.to_bits()
        );
    }

    #[test]
    fn display_quotes_for_the_shell() {
        let t = CommandTemplate::parse(&words(&["python", "train.py", "--lr={lr}", "a b", "it's"]))
            .unwrap();
        assert_eq!(
            t.to_string(),
            r#"python train.py --lr={lr} 'a b' 'it'\''s'"#
        );
    }
}
