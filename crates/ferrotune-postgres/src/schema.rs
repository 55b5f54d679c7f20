//! The database schema and its embedded, versioned migrations.
//!
//! `ferrotune_schema_version` holds one row per applied migration. Connecting applies the
//! missing ones in one transaction, under an advisory lock so that workers starting together
//! migrate once. A database whose schema is newer than this library is refused before
//! anything is written.

use crate::error::{storage, R};
use crate::url::valid_schema;

/// The schema version this library writes and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: the initial schema.
    r#"
CREATE TABLE ferrotune_schema_version (
    version integer NOT NULL PRIMARY KEY,
    library_version text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE ferrotune_studies (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    directions text NOT NULL,
    created timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The next trial number; also the number of trials (trials are never deleted alone).
    next_number bigint NOT NULL DEFAULT 0,
    -- Bumped by every transaction that finishes a trial, under this row's lock, so values
    -- become visible in order: a reader that has seen finish_seq = n has seen every trial
    -- finished with finish_seq <= n.
    finish_seq bigint NOT NULL DEFAULT 0
);
CREATE TABLE ferrotune_study_attrs (
    study_id bigint NOT NULL REFERENCES ferrotune_studies (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('user', 'system')),
    key text NOT NULL,
    value_json text NOT NULL,
    PRIMARY KEY (study_id, kind, key)
);
CREATE TABLE ferrotune_trials (
    id bigserial PRIMARY KEY,
    study_id bigint NOT NULL REFERENCES ferrotune_studies (id) ON DELETE CASCADE,
    number bigint NOT NULL,
    state text NOT NULL
        CHECK (state IN ('running', 'complete', 'pruned', 'fail', 'waiting', 'paused')),
    vals float8[],
    datetime_start timestamptz,
    datetime_complete timestamptz,
    fail_reason text,
    heartbeat timestamptz,
    -- The study's finish_seq when the trial finished; NULL while it is live.
    finish_seq bigint,
    UNIQUE (study_id, number)
);
CREATE INDEX ferrotune_trials_finished ON ferrotune_trials (study_id, finish_seq);
CREATE INDEX ferrotune_trials_live ON ferrotune_trials (study_id, number)
    WHERE finish_seq IS NULL;
CREATE TABLE ferrotune_trial_params (
    trial_id bigint NOT NULL REFERENCES ferrotune_trials (id) ON DELETE CASCADE,
    name text NOT NULL,
    distribution text NOT NULL,
    -- Float values exactly (NaN and infinities included); other values as JSON.
    value_float float8,
    value_json text,
    PRIMARY KEY (trial_id, name)
);
CREATE TABLE ferrotune_trial_intermediate (
    trial_id bigint NOT NULL REFERENCES ferrotune_trials (id) ON DELETE CASCADE,
    step bigint NOT NULL,
    vals float8[] NOT NULL,
    PRIMARY KEY (trial_id, step)
);
CREATE TABLE ferrotune_trial_attrs (
    trial_id bigint NOT NULL REFERENCES ferrotune_trials (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('user', 'system')),
    key text NOT NULL,
    value_json text NOT NULL,
    PRIMARY KEY (trial_id, kind, key)
);
"#,
];

/// Brings the schema up to [`SCHEMA_VERSION`]; errors, writing nothing, when it is newer.
/// With `write` false, only checks that the tables are at [`SCHEMA_VERSION`].
pub(crate) fn migrate(client: &mut postgres::Client, schema: Option<&str>, write: bool) -> R<()> {
    let mut tx = client.transaction()?;
    // One migrator per schema at a time (advisory locks are database-wide).
    let target: String = match schema {
        Some(s) => s.to_owned(),
        None => tx
            .query_one("SELECT coalesce(current_schema(), '')", &[])?
            .get(0),
    };
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&format!("ferrotune-migrate:{target}")],
    )?;
    if let Some(s) = schema {
        let exists: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[&s],
            )?
            .get(0);
        if !exists && !write {
            return Err(storage(format!(
                "schema `{s}` does not exist and this connection may not create it \
                 (migrate(false)); connect once with migrate enabled and write access"
            )));
        }
        if !exists {
            // Identifiers cannot be bound as parameters: the name was checked to be a plain
            // identifier, and is quoted.
            if !valid_schema(s) {
                return Err(storage(format!("invalid schema name `{s}`")));
            }
            tx.batch_execute(&format!("CREATE SCHEMA \"{s}\""))?;
        }
    } else if target.is_empty() {
        return Err(storage(
            "the connection's search_path names no existing schema to create ferrotune's \
             tables in: add ?schema=name to the URL, or create the schema first",
        ));
    }
    let has_table: bool = tx
        .query_one(
            "SELECT to_regclass('ferrotune_schema_version') IS NOT NULL",
            &[],
        )?
        .get(0);
    let current: i32 = if has_table {
        tx.query_one(
            "SELECT coalesce(max(version), 0) FROM ferrotune_schema_version",
            &[],
        )?
        .get(0)
    } else {
        0
    };
    if current > SCHEMA_VERSION {
        let library: Option<String> = tx
            .query_opt(
                "SELECT library_version FROM ferrotune_schema_version ORDER BY version DESC LIMIT 1",
                &[],
            )?
            .map(|r| r.get(0));
        return Err(storage(format!(
            "the ferrotune tables in schema `{target}` are at schema version {current} (written by \
             ferrotune-postgres {}), newer than version {SCHEMA_VERSION} that this \
             ferrotune-postgres {} knows; upgrade ferrotune on this machine (every worker of a \
             study must run a version that knows schema {current}). Nothing was written.",
            library.as_deref().unwrap_or("?"),
            env!("CARGO_PKG_VERSION"),
        )));
    }
    if current < SCHEMA_VERSION && !write {
        return Err(storage(format!(
            "the ferrotune tables in schema `{target}` are at version {current}, older than \
             version {SCHEMA_VERSION} of this library, and this connection may not upgrade them \
             (migrate(false)); connect once with migrate enabled and write access"
        )));
    }
    for version in current..SCHEMA_VERSION {
        let Some(sql) = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
        else {
            return Err(storage(format!(
                "no migration from schema version {version}"
            )));
        };
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO ferrotune_schema_version (version, library_version) VALUES ($1, $2)",
            &[&(version + 1), &env!("CARGO_PKG_VERSION")],
        )?;
    }
    tx.commit()?;
    Ok(())
}
