use super::*;
use ferrotune::{CategoricalDistribution, FloatDistribution, IntDistribution, SamplerSpec, Study};
use std::path::PathBuf;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/spaces")
}

fn toml(text: &str) -> Result<SearchSpaceFile, SpaceError> {
    SearchSpaceFile::parse(text, Format::Toml, "space.toml")
}

fn yaml(text: &str) -> Result<SearchSpaceFile, SpaceError> {
    SearchSpaceFile::parse(text, Format::Yaml, "space.yaml")
}

fn json(text: &str) -> Result<SearchSpaceFile, SpaceError> {
    SearchSpaceFile::parse(text, Format::Json, "space.json")
}

/// The message of an error the test expects.
fn message(result: Result<SearchSpaceFile, SpaceError>) -> String {
    match result {
        Ok(space) => panic!("expected an error, got {space:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_contains(msg: &str, parts: &[&str]) {
    for part in parts {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
}

const BRIEF_TOML: &str = r#"
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

fn brief_space() -> SearchSpaceFile {
    toml(BRIEF_TOML).expect("valid")
}

// ---------------------------------------------------------------- parsing each format

#[test]
fn toml_yaml_and_json_read_the_same_space() {
    let from_yaml = yaml(
        "params:\n  lr: {type: float, low: 1e-5, high: 1e-1, log: true}\n  \
         optimizer: {type: categorical, choices: [adam, sgd]}\n  \
         momentum:\n    type: float\n    low: 0\n    high: 0.99\n    when: {optimizer: [sgd]}\n",
    )
    .expect("yaml");
    let from_json = json(
        r#"{"params": {"lr": {"type": "float", "low": 1e-5, "high": 0.1, "log": true},
            "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
            "momentum": {"type": "float", "low": 0, "high": 0.99, "when": {"optimizer": ["sgd"]}}}}"#,
    )
    .expect("json");
    let from_toml = brief_space();
    assert_eq!(from_toml, from_yaml);
    assert_eq!(from_toml, from_json);
    assert_eq!(
        from_toml.names().collect::<Vec<_>>(),
        ["lr", "optimizer", "momentum"]
    );
    let momentum = from_toml.get("momentum").expect("momentum");
    assert_eq!(
        momentum.distribution(),
        &Distribution::Float(FloatDistribution::uniform(0.0, 0.99).expect("dist"))
    );
    assert_eq!(momentum.conditions().len(), 1);
    assert_eq!(momentum.conditions()[0].param(), "optimizer");
    assert_eq!(
        momentum.conditions()[0].values(),
        &[ParamValue::Str("sgd".into())]
    );
}

#[test]
fn the_example_files_are_one_space() {
    let dir = examples();
    let from_toml = SearchSpaceFile::load(&dir.join("classifier.toml")).expect("toml");
    let from_yaml = SearchSpaceFile::load(&dir.join("classifier.yaml")).expect("yaml");
    let from_json = SearchSpaceFile::load(&dir.join("classifier.json")).expect("json");
    assert_eq!(from_toml, from_yaml);
    assert_eq!(from_toml, from_json);
    assert_eq!(from_toml.len(), 8);
    let decay = from_toml.get("decay_every").expect("decay_every");
    assert_eq!(
        decay.conditions_text().as_deref(),
        Some(r#"schedule = "step""#)
    );
    assert_eq!(
        from_toml.get("dropout").and_then(|p| p.conditions_text()),
        Some("layers in [2, 3, 4]".to_owned())
    );
}

#[test]
fn toml_keeps_file_order_and_dependencies_come_first() {
    // Not alphabetical, and `momentum` is written before the parameter it depends on.
    let space = toml(
        r#"
[params.zeta]
type = "int"
low = 1
high = 3
[params.momentum]
type = "float"
low = 0.0
high = 1.0
when = { optimizer = "sgd" }
[params.alpha]
type = "float"
low = 0.0
high = 1.0
[params.optimizer]
type = "categorical"
choices = ["adam", "sgd"]
"#,
    )
    .expect("valid");
    assert_eq!(
        space.names().collect::<Vec<_>>(),
        ["zeta", "alpha", "optimizer", "momentum"]
    );
}

#[test]
fn yaml_reads_exponents_without_a_dot_booleans_and_single_values() {
    let space = yaml(
        "params:\n  lr: {type: float, low: 1e-5, high: 1e-1, log: true}\n  \
         bn: {type: categorical, choices: [true, false]}\n  \
         eps: {type: float, low: 1e-8, high: 1e-3, log: true, when: {bn: true}}\n",
    )
    .expect("valid");
    let lr = space.get("lr").expect("lr");
    assert_eq!(
        lr.distribution(),
        &Distribution::Float(FloatDistribution::log_uniform(1e-5, 0.1).expect("dist"))
    );
    assert_eq!(
        space.get("eps").expect("eps").conditions()[0].values(),
        &[ParamValue::Bool(true)]
    );
}

#[test]
fn steps_ints_and_mixed_choices_build_library_distributions() {
    let space = toml(
        r#"
[params.units]
type = "int"
low = 16
high = 128
step = 16
[params.layers]
type = "int"
low = 1
high = 64
log = true
[params.frac]
type = "float"
low = 0
high = 1
step = 0.25
[params.mixed]
type = "categorical"
choices = ["relu", 3, 0.5, true]
"#,
    )
    .expect("valid");
    let dist = |name: &str| space.get(name).expect(name).distribution().clone();
    assert_eq!(
        dist("units"),
        Distribution::Int(IntDistribution::new(16, 128, false, 16).expect("dist"))
    );
    assert_eq!(
        dist("layers"),
        Distribution::Int(IntDistribution::log_range(1, 64).expect("dist"))
    );
    assert_eq!(
        dist("frac"),
        Distribution::Float(FloatDistribution::stepped(0.0, 1.0, 0.25).expect("dist"))
    );
    let choices: Vec<ParamValue> = vec!["relu".into(), 3i64.into(), 0.5.into(), true.into()];
    assert_eq!(
        dist("mixed"),
        Distribution::Categorical(CategoricalDistribution::new(choices).expect("dist"))
    );
}

#[test]
fn condition_values_are_put_in_the_parameters_order() {
    let space = json(
        r#"{"params": {
            "layers": {"type": "int", "low": 1, "high": 4},
            "opt": {"type": "categorical", "choices": ["a", "b", "c"]},
            "x": {"type": "float", "low": 0, "high": 1,
                  "when": {"opt": ["c", "a", "c"], "layers": [4, 2]}}}}"#,
    )
    .expect("valid");
    let x = space.get("x").expect("x");
    assert_eq!(
        x.conditions_text().as_deref(),
        Some(r#"layers in [2, 4] and opt in ["a", "c"]"#)
    );
}

#[test]
fn the_stored_json_round_trips_and_keeps_the_order() {
    let space = SearchSpaceFile::load(&examples().join("classifier.toml")).expect("valid");
    let stored = space.to_json();
    assert_eq!(stored["version"], 1);
    assert_eq!(stored["params"][0]["name"], "lr");
    let back = SearchSpaceFile::from_json(&stored).expect("round trip");
    assert_eq!(back, space);
    // Through text too, as a database stores it.
    let text = serde_json::to_string(&stored).expect("text");
    let reread: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(SearchSpaceFile::from_json(&reread).expect("reread"), space);
}

// ---------------------------------------------------------------- error classes

#[test]
fn an_unknown_extension_names_the_supported_ones() {
    let msg = message(SearchSpaceFile::load(Path::new("space.txt")));
    assert_eq!(
        msg,
        "space.txt: unsupported search-space format (extension `.txt`); use .toml, .yaml, .yml or .json"
    );
    let msg = message(SearchSpaceFile::load(Path::new("space")));
    assert_contains(&msg, &["space: ", "a file without an extension", ".toml"]);
}

#[test]
fn a_missing_file_is_named_with_the_io_error() {
    let err = SearchSpaceFile::load(Path::new("/nonexistent/space.toml")).expect_err("missing");
    assert_eq!(
        err.to_string(),
        "cannot read search-space file /nonexistent/space.toml"
    );
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn toml_syntax_errors_keep_line_and_column() {
    let msg = message(toml("[params.lr]\ntype = \"float\"\nlow = 1e-5 2\n"));
    assert_contains(
        &msg,
        &[
            "space.toml: invalid TOML: ",
            "line 3, column",
            "low = 1e-5 2",
        ],
    );
}

#[test]
fn yaml_syntax_errors_keep_line_and_column() {
    let msg = message(yaml("params:\n  lr: {type: float, low: [1, high: 2}\n"));
    assert_contains(&msg, &["space.yaml: ", "invalid YAML: ", "line 2 column"]);
}

#[test]
fn json_syntax_errors_keep_line_and_column() {
    let msg = message(json("{\"params\": {\n \"lr\": {\"type\": \"float\",, }}}"));
    assert_contains(&msg, &["space.json: ", "invalid JSON: ", "line 2 column"]);
}

#[test]
fn unknown_keys_are_named_with_their_parameter_and_position() {
    let msg = message(toml(
        "[params.lr]\ntype = \"float\"\nlow = 0.1\nhigh = 1.0\nlgo = true\n",
    ));
    assert_contains(
        &msg,
        &[
            "space.toml: parameter \"lr\": invalid TOML: ",
            "line 5, column 1",
            "unknown field `lgo`",
        ],
    );
    let msg = message(yaml(
        "params:\n  lr: {type: float, low: 0.1, high: 1.0, lgo: true}\n",
    ));
    assert_contains(
        &msg,
        &[
            "parameter \"lr\": invalid YAML: ",
            "unknown field `lgo`",
            "line 2",
        ],
    );
    let msg = message(json(
        r#"{"params": {"lr": {"type": "float", "low": 0.1, "high": 1.0, "lgo": true}}}"#,
    ));
    assert_contains(
        &msg,
        &[
            "parameter \"lr\": invalid JSON: ",
            "unknown field `lgo`",
            "column",
        ],
    );
}

#[test]
fn unknown_top_level_keys_are_named() {
    let msg = message(toml(
        "[runner]\ncommand = \"x\"\n[params.lr]\ntype = \"float\"\nlow = 0\nhigh = 1\n",
    ));
    assert_contains(&msg, &["unknown field `runner`, expected `params`"]);
    assert!(!msg.contains("parameter \""), "{msg}");
    // The flat JSON form of earlier versions gets a hint.
    let msg = message(json(r#"{"lr": {"type": "float", "low": 0, "high": 1}}"#));
    assert_contains(
        &msg,
        &[
            "unknown field `lr`, expected `params`",
            "top-level \"params\"",
        ],
    );
}

#[test]
fn a_file_without_params_says_so() {
    assert_contains(&message(toml("")), &["missing field `params`"]);
    assert_contains(
        &message(json(r#"{"params": {}}"#)),
        &["space.json: the search space has no parameters"],
    );
}

#[test]
fn an_unknown_or_missing_type_is_named() {
    let msg = message(toml("[params.lr]\ntype = \"flaot\"\nlow = 0\nhigh = 1\n"));
    assert_contains(
        &msg,
        &[
            "parameter \"lr\"",
            "unknown variant `flaot`",
            "`float`, `int`, `categorical`",
        ],
    );
    let msg = message(toml("[params.lr]\nlow = 0\nhigh = 1\n"));
    assert_contains(&msg, &["parameter \"lr\"", "missing field `type`"]);
}

#[test]
fn a_missing_bound_is_named() {
    let msg = message(toml("[params.lr]\ntype = \"float\"\nlow = 0\n"));
    assert_eq!(
        msg,
        "space.toml: parameter \"lr\": a float parameter needs `high`"
    );
}

#[test]
fn int_bounds_must_be_integers() {
    let msg = message(toml("[params.n]\ntype = \"int\"\nlow = 1.5\nhigh = 4\n"));
    assert_eq!(
        msg,
        "space.toml: parameter \"n\": `low` of an int parameter must be an integer, got 1.5"
    );
}

#[test]
fn a_value_of_the_wrong_type_is_named() {
    let msg = message(toml(
        "[params.lr]\ntype = \"float\"\nlow = \"small\"\nhigh = 1\n",
    ));
    assert_contains(
        &msg,
        &[
            "parameter \"lr\"",
            "line 3",
            "invalid type: string \"small\", expected a number",
        ],
    );
}

#[test]
fn integers_beyond_i64_are_refused() {
    let msg = message(json(
        r#"{"params": {"n": {"type": "int", "low": 0, "high": 18446744073709551615}}}"#,
    ));
    assert_contains(
        &msg,
        &[
            "parameter \"n\"",
            "integer 18446744073709551615 is too large",
        ],
    );
}

#[test]
fn keys_of_another_type_are_refused() {
    let msg = message(toml(
        "[params.lr]\ntype = \"float\"\nlow = 0\nhigh = 1\nchoices = [1, 2]\n",
    ));
    assert_eq!(
        msg,
        "space.toml: parameter \"lr\": `choices` is only for categorical parameters, not for a float one"
    );
    let msg = message(toml(
        "[params.opt]\ntype = \"categorical\"\nchoices = [\"a\"]\nlow = 0\n",
    ));
    assert_eq!(
        msg,
        "space.toml: parameter \"opt\": `low` does not apply to a categorical parameter (it takes `choices`)"
    );
    let msg = message(toml("[params.opt]\ntype = \"categorical\"\n"));
    assert_eq!(
        msg,
        "space.toml: parameter \"opt\": a categorical parameter needs `choices`"
    );
}

#[test]
fn range_errors_are_the_librarys() {
    let msg = message(toml(
        "[params.lr]\ntype = \"float\"\nlow = 0.0\nhigh = 0.1\nlog = true\n",
    ));
    assert_contains(
        &msg,
        &[
            "space.toml: parameter \"lr\": invalid distribution: ",
            "low > 0",
            "low=0",
        ],
    );
    let msg = message(toml("[params.n]\ntype = \"int\"\nlow = 5\nhigh = 1\n"));
    assert_contains(
        &msg,
        &["parameter \"n\"", "int low=5 is greater than high=1"],
    );
    let msg = message(toml(
        "[params.opt]\ntype = \"categorical\"\nchoices = [\"a\", \"a\"]\n",
    ));
    assert_contains(&msg, &["parameter \"opt\"", "appears twice"]);
    let msg = message(toml("[params.opt]\ntype = \"categorical\"\nchoices = []\n"));
    assert_contains(&msg, &["parameter \"opt\"", "at least one choice"]);
}

#[test]
fn a_parameter_defined_twice_is_refused() {
    let msg = message(json(
        r#"{"params": {"lr": {"type": "float", "low": 0, "high": 1},
                       "lr": {"type": "float", "low": 0, "high": 2}}}"#,
    ));
    assert_contains(
        &msg,
        &[
            "space.json: invalid JSON: ",
            "parameter \"lr\" is defined twice",
            "line 2",
        ],
    );
    let msg = message(yaml(
        "params:\n  lr: {type: float, low: 0, high: 1}\n  lr: {type: float, low: 0, high: 2}\n",
    ));
    assert_contains(&msg, &["parameter \"lr\" is defined twice"]);
}

#[test]
fn spaces_built_from_parameters_get_the_same_checks() {
    let lr = || {
        ParamSpec::new(
            "lr",
            Distribution::Float(FloatDistribution::uniform(0.0, 1.0).expect("dist")),
            vec![],
        )
    };
    let err = SearchSpaceFile::new(vec![lr(), lr()]).expect_err("twice");
    assert_eq!(
        err.to_string(),
        "search space: parameter \"lr\": defined twice; give each parameter one entry"
    );
    let err = SearchSpaceFile::new(vec![]).expect_err("empty");
    assert_eq!(
        err.to_string(),
        "search space: the search space has no parameters"
    );
    let msg = message(SearchSpaceFile::from_str("params = 3", Format::Toml));
    assert_contains(&msg, &["<TOML text>: invalid TOML: "]);
}

#[test]
fn non_finite_choices_are_refused() {
    let msg = message(yaml(
        "params:\n  x: {type: categorical, choices: [1.0, .inf]}\n",
    ));
    assert_contains(&msg, &["parameter \"x\"", "choice inf is not finite"]);
}

// ---------------------------------------------------------------- `when` errors

#[test]
fn when_must_name_something() {
    let msg = message(toml(
        "[params.x]\ntype = \"float\"\nlow = 0\nhigh = 1\nwhen = {}\n",
    ));
    assert_eq!(
        msg,
        "space.toml: parameter \"x\": `when` is empty; name the parameter it depends on, or drop it"
    );
}

#[test]
fn when_naming_an_unknown_parameter_lists_the_known_ones() {
    let msg = message(toml(&BRIEF_TOML.replace(
        "when = { optimizer = [\"sgd\"] }",
        "when = { optimiser = [\"sgd\"] }",
    )));
    assert_eq!(
        msg,
        "space.toml: parameter \"momentum\": `when` refers to \"optimiser\", which is not a \
         parameter (known: lr, optimizer, momentum)"
    );
}

#[test]
fn when_naming_itself_is_refused() {
    let msg = message(toml(
        "[params.x]\ntype = \"int\"\nlow = 0\nhigh = 1\nwhen = { x = [1] }\n",
    ));
    assert_eq!(
        msg,
        "space.toml: parameter \"x\": `when` refers to the parameter itself"
    );
}

#[test]
fn when_on_a_float_is_refused() {
    let msg = message(toml(
        &BRIEF_TOML.replace("when = { optimizer = [\"sgd\"] }", "when = { lr = [0.1] }"),
    ));
    assert_eq!(
        msg,
        "space.toml: parameter \"momentum\": `when` refers to \"lr\", a float parameter; \
         conditions can only test categorical and int parameters"
    );
}

#[test]
fn when_without_values_is_refused() {
    let msg = message(toml(&BRIEF_TOML.replace(
        "when = { optimizer = [\"sgd\"] }",
        "when = { optimizer = [] }",
    )));
    assert_eq!(
        msg,
        "space.toml: parameter \"momentum\": `when.optimizer` lists no values; list the values \
         for which \"momentum\" is active"
    );
}

#[test]
fn when_values_must_be_choices() {
    let msg = message(toml(&BRIEF_TOML.replace(
        "when = { optimizer = [\"sgd\"] }",
        "when = { optimizer = [\"sgd\", \"sgdd\"] }",
    )));
    assert_eq!(
        msg,
        "space.toml: parameter \"momentum\": `when.optimizer`: \"sgdd\" is not one of its \
         choices (\"adam\", \"sgd\")"
    );
    // Typed: the float 1.0 is not the int choice 1.
    let msg = message(json(
        r#"{"params": {"k": {"type": "categorical", "choices": [1, 2]},
            "x": {"type": "float", "low": 0, "high": 1, "when": {"k": [1.0]}}}}"#,
    ));
    assert_contains(&msg, &["`when.k`: 1.0 is not one of its choices (1, 2)"]);
}

#[test]
fn when_values_must_be_in_an_int_range() {
    let msg = message(toml(
        "[params.layers]\ntype = \"int\"\nlow = 1\nhigh = 4\n\
         [params.x]\ntype = \"float\"\nlow = 0\nhigh = 1\nwhen = { layers = [2, 9] }\n",
    ));
    assert_eq!(
        msg,
        "space.toml: parameter \"x\": `when.layers`: 9 is not a value of int[1, 4]"
    );
}

#[test]
fn when_naming_a_parameter_twice_is_refused() {
    let msg = message(json(
        r#"{"params": {"k": {"type": "int", "low": 0, "high": 2},
            "x": {"type": "float", "low": 0, "high": 1, "when": {"k": 1, "k": 2}}}}"#,
    ));
    assert_contains(&msg, &["parameter \"x\"", "\"k\" is named twice"]);
    let err = SearchSpaceFile::new(vec![
        ParamSpec::new(
            "k",
            Distribution::Int(IntDistribution::range(0, 2).expect("dist")),
            vec![],
        ),
        ParamSpec::new(
            "x",
            Distribution::Int(IntDistribution::range(0, 2).expect("dist")),
            vec![
                Condition::new("k", vec![1i64.into()]),
                Condition::new("k", vec![2i64.into()]),
            ],
        ),
    ])
    .expect_err("twice");
    assert_eq!(
        err.to_string(),
        "search space: parameter \"x\": `when` tests \"k\" twice"
    );
}

#[test]
fn cycles_are_refused_with_the_cycle() {
    let msg = message(toml(
        "[params.a]\ntype = \"int\"\nlow = 0\nhigh = 1\nwhen = { b = [1] }\n\
         [params.b]\ntype = \"int\"\nlow = 0\nhigh = 1\nwhen = { a = [1] }\n",
    ));
    assert_eq!(
        msg,
        "space.toml: the `when` conditions form a cycle: a -> b -> a (each is active only \
         depending on the next)"
    );
    // A chain leading into a longer cycle: only the cycle is reported.
    let msg = message(yaml(
        "params:\n  \
         head: {type: int, low: 0, high: 1, when: {c: 1}}\n  \
         c: {type: int, low: 0, high: 1, when: {d: 1}}\n  \
         d: {type: int, low: 0, high: 1, when: {e: 1}}\n  \
         e: {type: int, low: 0, high: 1, when: {c: 0}}\n",
    ));
    assert_contains(&msg, &["form a cycle: c -> d -> e -> c"]);
}

#[test]
fn stored_spaces_of_another_version_are_refused() {
    let mut stored = brief_space().to_json();
    stored["version"] = 2.into();
    let err = SearchSpaceFile::from_json(&stored).expect_err("version");
    assert_contains(
        &err.to_string(),
        &[
            "the stored search space: it has version 2",
            "reads version 1",
        ],
    );
    let err = SearchSpaceFile::from_json(&serde_json::json!({"params": 3})).expect_err("garbage");
    assert_contains(
        &err.to_string(),
        &["the stored search space: invalid JSON: "],
    );
}

#[test]
fn env_names_are_upper_case_and_collisions_are_named() {
    assert_eq!(env_var_name("model.lr"), "FERROTUNE_PARAM_MODEL_LR");
    assert_eq!(env_var_name("n_layers"), "FERROTUNE_PARAM_N_LAYERS");
    let space = brief_space();
    let vars = space.env_var_names().expect("distinct");
    assert_eq!(vars[0], ("lr", "FERROTUNE_PARAM_LR".to_owned()));
    let clash = json(
        r#"{"params": {"a-b": {"type": "int", "low": 0, "high": 1},
                       "a_b": {"type": "int", "low": 0, "high": 1}}}"#,
    )
    .expect("valid space")
    .env_var_names()
    .expect_err("clash");
    assert_eq!(
        clash,
        "parameters \"a-b\" and \"a_b\" both map to the environment variable FERROTUNE_PARAM_A_B; rename one"
    );
}

// ---------------------------------------------------------------- conditions and differences

#[test]
fn inactive_parameters_propagate_down_a_chain() {
    let space = SearchSpaceFile::load(&examples().join("classifier.yaml")).expect("valid");
    // Pick the first choice (adam) for categoricals, the low end otherwise.
    let pick_first = |p: &ParamSpec| -> Result<ParamValue, ()> {
        let d = p.distribution();
        d.to_external(d.low_internal()).map_err(|_| ())
    };
    let adam = space.resolve(pick_first).expect("resolve");
    assert_eq!(adam.len(), 8);
    for name in ["momentum", "schedule", "decay_every", "dropout"] {
        assert_eq!(adam[name], None, "{name} should be inactive");
    }
    // sgd, and "step" for the schedule: the whole chain is active.
    let sgd = space
        .resolve(|p| -> Result<ParamValue, ()> {
            Ok(match p.name() {
                "optimizer" => "sgd".into(),
                "schedule" => "step".into(),
                "layers" => ParamValue::Int(3),
                _ => pick_first(p)?,
            })
        })
        .expect("resolve");
    assert!(sgd.values().all(Option::is_some), "{sgd:?}");
}

#[test]
fn differences_are_described_and_order_does_not_matter() {
    let space = brief_space();
    let reordered = toml(
        r#"
[params.momentum]
type = "float"
low = 0.0
high = 0.99
when = { optimizer = "sgd" }
[params.optimizer]
type = "categorical"
choices = ["adam", "sgd"]
[params.lr]
type = "float"
low = 1e-5
high = 1e-1
log = true
"#,
    )
    .expect("valid");
    assert_eq!(space.difference("A", &reordered, "B"), None);
    let narrower = toml(&BRIEF_TOML.replace("high = 1e-1", "high = 1e-2")).expect("valid");
    assert_eq!(
        space
            .difference("the stored space", &narrower, "space.toml")
            .as_deref(),
        Some(
            "parameter \"lr\" is float[0.00001, 0.1] log in the stored space but \
             float[0.00001, 0.01] log in space.toml"
        )
    );
    let unconditional =
        toml(&BRIEF_TOML.replace("when = { optimizer = [\"sgd\"] }", "")).expect("valid");
    assert_eq!(
        space.difference("A", &unconditional, "B").as_deref(),
        Some(
            "parameter \"momentum\" is active when optimizer = \"sgd\" in A but always active in B"
        )
    );
    let fewer = toml(
        &BRIEF_TOML
            .replace(
                "log = true\n[params.optimizer]",
                "log = true\n[params.opt2]",
            )
            .replace("optimizer = [", "opt2 = ["),
    )
    .expect("valid");
    assert_eq!(
        space.difference("A", &fewer, "B").as_deref(),
        Some("parameter \"optimizer\" is in A but not in B")
    );
    assert_eq!(
        fewer.difference("B", &space, "A").as_deref(),
        Some("parameter \"opt2\" is in B but not in A")
    );
}

#[test]
fn suggest_records_only_active_parameters() {
    let space = SearchSpaceFile::load(&examples().join("classifier.json")).expect("valid");
    let study = Study::builder()
        .sampler(SamplerSpec::Random)
        .seed(11)
        .build()
        .expect("study");
    let mut saw_sgd = false;
    let mut saw_adam = false;
    for _ in 0..40 {
        let mut trial = study.ask().expect("ask");
        let params = space.suggest(&mut trial).expect("suggest");
        let sgd = params["optimizer"] == Some("sgd".into());
        saw_sgd |= sgd;
        saw_adam |= !sgd;
        assert_eq!(params["momentum"].is_some(), sgd, "{params:?}");
        let mut recorded: Vec<&str> = trial.frozen().params.names().collect();
        recorded.sort_unstable();
        let active: Vec<&str> = params
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(recorded, active);
        study.tell(trial, 0.0).expect("tell");
    }
    assert!(saw_sgd && saw_adam);
}

// ---------------------------------------------------------------- properties

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn distribution() -> impl Strategy<Value = Distribution> {
        prop_oneof![
            (-1e3..1e3f64, 0.0..1e3f64).prop_map(|(low, width)| Distribution::Float(
                FloatDistribution::uniform(low, low + width).expect("uniform")
            )),
            (1e-6..1e2f64, 1.0..1e4f64).prop_map(|(low, factor)| Distribution::Float(
                FloatDistribution::log_uniform(low, low * factor).expect("log")
            )),
            (-100.0..100.0f64, 0u32..40, 0.01..10.0f64, 0.0..1.0f64).prop_map(
                |(low, k, step, extra)| Distribution::Float(
                    FloatDistribution::stepped(low, low + (f64::from(k) + extra) * step, step)
                        .expect("stepped")
                )
            ),
            (-100..100i64, 0..60i64, 1..5i64).prop_map(|(low, width, step)| Distribution::Int(
                IntDistribution::new(low, low + width, false, step).expect("int")
            )),
            (1..100i64, 0..1000i64).prop_map(|(low, width)| Distribution::Int(
                IntDistribution::log_range(low, low + width).expect("int log")
            )),
            prop::collection::btree_set("[a-z]{1,5}", 1..5).prop_map(|set| {
                Distribution::Categorical(
                    CategoricalDistribution::new(set.into_iter().map(ParamValue::Str))
                        .expect("categorical"),
                )
            }),
            prop::collection::btree_set(-5..5i64, 1..4).prop_map(|set| {
                let mut choices: Vec<ParamValue> = set.into_iter().map(ParamValue::Int).collect();
                choices.push(ParamValue::Bool(true));
                Distribution::Categorical(
                    CategoricalDistribution::new(choices).expect("categorical"),
                )
            }),
        ]
    }

    /// Some values of a categorical or int distribution, chosen by the bits of `bits`
    /// (never none); `None` for a float.
    fn some_values(d: &Distribution, bits: u64) -> Option<Vec<ParamValue>> {
        let n = d.cardinality()?;
        if matches!(d, Distribution::Float(_)) {
            return None;
        }
        let n = n.min(64);
        let mut picked: Vec<ParamValue> = (0..n)
            .filter(|i| bits >> i & 1 == 1)
            .filter_map(|i| match d {
                Distribution::Categorical(_) => d.to_external(i as f64).ok(),
                Distribution::Int(int) => d
                    .to_external((int.low() + i as i64 * int.step()) as f64)
                    .ok(),
                Distribution::Float(_) => None,
            })
            .collect();
        if picked.is_empty() {
            picked.push(d.to_external(d.low_internal()).ok()?);
        }
        Some(picked)
    }

    /// A valid space: each parameter may depend on up to two earlier categorical or int
    /// parameters, then the list is shuffled so the file order is not topological.
    fn space() -> impl Strategy<Value = Vec<ParamSpec>> {
        prop::collection::vec(
            (
                distribution(),
                prop::collection::vec((any::<u8>(), any::<u64>()), 0..3),
            ),
            1..7,
        )
        .prop_map(|entries| {
            let mut specs: Vec<ParamSpec> = Vec::new();
            for (i, (dist, conds)) in entries.into_iter().enumerate() {
                let mut when: Vec<Condition> = Vec::new();
                let candidates: Vec<&ParamSpec> = specs
                    .iter()
                    .filter(|p| !matches!(p.distribution(), Distribution::Float(_)))
                    .collect();
                for (sel, bits) in conds {
                    if candidates.is_empty() {
                        break;
                    }
                    let target = candidates[sel as usize % candidates.len()];
                    if when.iter().any(|c| c.param() == target.name()) {
                        continue;
                    }
                    if let Some(values) = some_values(target.distribution(), bits) {
                        when.push(Condition::new(target.name(), values));
                    }
                }
                specs.push(ParamSpec::new(format!("p{i}"), dist, when));
            }
            specs
        })
        .prop_shuffle()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn valid_spaces_round_trip_and_suggest_inside_their_distributions(
            specs in space(),
            seed in any::<u64>(),
        ) {
            let space = SearchSpaceFile::new(specs.clone()).expect("a generated space is valid");
            prop_assert_eq!(space.len(), specs.len());
            // Suggestion order is topological.
            for (i, p) in space.params().iter().enumerate() {
                for c in p.conditions() {
                    let at = space.names().position(|n| n == c.param());
                    prop_assert!(at.is_some_and(|j| j < i), "{} before {}", p.name(), c.param());
                }
            }
            // JSON round trip, through text.
            let text = serde_json::to_string(&space.to_json()).expect("text");
            let value: serde_json::Value = serde_json::from_str(&text).expect("json");
            prop_assert_eq!(&SearchSpaceFile::from_json(&value).expect("round trip"), &space);

            let study = Study::builder()
                .sampler(SamplerSpec::Random)
                .seed(seed)
                .build()
                .expect("study");
            for _ in 0..4 {
                let mut trial = study.ask().expect("ask");
                let params = space.suggest(&mut trial).expect("suggest");
                prop_assert_eq!(params.len(), space.len());
                for p in space.params() {
                    // Active exactly when every condition's parameter is active with a listed
                    // value, computed here from the definition.
                    let expected = p.conditions().iter().all(|c| {
                        matches!(&params[c.param()], Some(v) if c.values().contains(v))
                    });
                    let value = &params[p.name()];
                    prop_assert_eq!(value.is_some(), expected, "{} in {:?}", p.name(), params);
                    if let Some(v) = value {
                        prop_assert!(
                            p.distribution().to_internal(v).is_ok(),
                            "{} = {} outside {}", p.name(), v, p.distribution()
                        );
                    }
                    prop_assert_eq!(trial.frozen().param(p.name()), value.as_ref());
                }
                study.tell(trial, 0.0).expect("tell");
            }
        }
    }
}
