//! Search-space files: a JSON object mapping each parameter name to its distribution in
//! ferrotune's JSON form. (TOML and YAML forms, and conditional `when` clauses, come with the
//! command-line runner.)

use anyhow::{bail, Context};
use ferrotune::Distribution;
use std::collections::BTreeMap;
use std::path::Path;

/// Reads and validates a search-space file; errors name the file and the parameter.
pub fn load(path: &Path) -> anyhow::Result<BTreeMap<String, Distribution>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read search-space file {}", path.display()))?;
    let raw: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let Some(object) = raw.as_object() else {
        bail!(
            "{}: the search space must be a JSON object of parameter name -> distribution",
            path.display()
        );
    };
    if object.is_empty() {
        bail!("{}: the search space has no parameters", path.display());
    }
    object
        .iter()
        .map(|(name, value)| {
            let dist: Distribution = serde_json::from_value(value.clone())
                .with_context(|| format!("{}: parameter `{name}`", path.display()))?;
            Ok((name.clone(), dist))
        })
        .collect()
}
