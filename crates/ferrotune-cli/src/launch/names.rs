//! Names for what a launcher creates, valid under Kubernetes' DNS-1123 label rules: at most
//! 63 characters, lower-case ASCII letters, digits and `-`, starting and ending with a letter
//! or digit. A Job's name must be one (its pods carry it in a label), and Slurm takes it too.

use anyhow::bail;

/// The longest DNS-1123 label.
pub const MAX_LABEL: usize = 63;

/// The study's name as DNS-1123 label text: lower-cased, every run of other characters one
/// `-`, without `-` at either end (`My Study` → `my-study`). May be empty or too long.
pub fn slug(study: &str) -> String {
    let mut out = String::with_capacity(study.len());
    for c in study.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// The name of the workers of a study: `ferrotune-<slug>`, a valid DNS-1123 label for every
/// study name, the same every time. A name too long to fit, or with nothing left of the
/// study's name (`日本語`), is cut and ends with a hash of the full study name, so that
/// different studies keep different names.
pub fn workers_name(study: &str) -> String {
    let base = format!("ferrotune-{}", slug(study));
    let base = base.trim_end_matches('-');
    if base.len() <= MAX_LABEL && base != "ferrotune" {
        return base.to_owned();
    }
    let hash = format!("{:08x}", fnv1a(study.as_bytes()) as u32);
    let keep = MAX_LABEL - hash.len() - 1;
    // The slug is ASCII, so any byte index is a char boundary.
    let head = base[..base.len().min(keep)].trim_end_matches('-');
    format!("{head}-{hash}")
}

/// A label value for the study (`ferrotune/study=my-study`): the slug, cut to fit, or
/// `unnamed` when nothing is left.
pub fn label_value(study: &str) -> String {
    let s = slug(study);
    let s = s[..s.len().min(MAX_LABEL)].trim_end_matches('-');
    if s.is_empty() {
        "unnamed".to_owned()
    } else {
        s.to_owned()
    }
}

/// Checks a name given by the user (`--name`) against the DNS-1123 label rules.
pub fn check_label(flag: &str, name: &str) -> anyhow::Result<()> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ends_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > MAX_LABEL || !valid_chars || !ends_ok {
        bail!(
            "{flag} `{name}` is not a valid Kubernetes name (a DNS-1123 label): use at most \
             {MAX_LABEL} lower-case letters, digits and `-`, starting and ending with a letter \
             or digit, e.g. `{}`",
            workers_name(name)
        );
    }
    Ok(())
}

/// 64-bit FNV-1a: a small, stable hash (the same name on every machine and version).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn study_names_become_job_names() {
        assert_eq!(workers_name("My Study"), "ferrotune-my-study");
        assert_eq!(
            workers_name("resnet_lr/v2 (final)"),
            "ferrotune-resnet-lr-v2-final"
        );
        assert_eq!(workers_name("digits-svm-tpe"), "ferrotune-digits-svm-tpe");
        let long = "a".repeat(100);
        let name = workers_name(&long);
        assert_eq!(name.len(), MAX_LABEL);
        assert_ne!(name, workers_name(&"a".repeat(101)), "cut names keep apart");
        let unicode = workers_name("日本語");
        assert!(
            unicode.starts_with("ferrotune-") && unicode.len() == 18,
            "{unicode}"
        );
        assert_ne!(unicode, workers_name("中文"));
        assert_eq!(label_value("My Study"), "my-study");
        assert_eq!(label_value("日本語"), "unnamed");
    }

    #[test]
    fn given_names_are_checked() {
        check_label("--name", "hpo-1").unwrap();
        for bad in ["", "Hpo", "hpo_1", "-hpo", "hpo-", "a.b", &"a".repeat(64)] {
            let msg = check_label("--name", bad).unwrap_err().to_string();
            assert!(msg.contains("DNS-1123"), "{msg}");
        }
    }

    proptest! {
        #[test]
        fn every_study_name_gives_a_valid_label(study in "\\PC{0,90}") {
            let name = workers_name(&study);
            prop_assert!(check_label("name", &name).is_ok(), "{study:?} -> {name:?}");
            prop_assert_eq!(&name, &workers_name(&study));
            let label = label_value(&study);
            prop_assert!(label.len() <= MAX_LABEL);
            prop_assert!(check_label("label", &label).is_ok(), "{study:?} -> {label:?}");
        }
    }
}
