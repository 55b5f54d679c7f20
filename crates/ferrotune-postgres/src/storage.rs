//! `PostgresStorage`: the `Storage` implementation.

use crate::error::{code, storage, Fail, R};
use crate::pool::{Conn, Pool, Target};
use crate::sql;
use crate::tls::Connector;
use crate::url::{self, invalid_schema, valid_schema};
use ferrotune::storage::{FrozenStudy, Storage, StudyId};
use ferrotune::trial::{FrozenTrial, Param, Params, TrialId, TrialState};
use ferrotune::{Direction, Distribution, Error, ParamValue, Result};
use postgres::error::SqlState;
use postgres::Row;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// How a [`PostgresStorage`] connects: pool size, connect timeout and schema.
///
/// ```
/// use ferrotune_postgres::PostgresOptions;
/// let options = PostgresOptions::default().max_connections(8).schema("hpo");
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    max_connections: usize,
    connect_timeout: Option<Duration>,
    schema: Option<String>,
    migrate: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            max_connections: 4,
            connect_timeout: None,
            schema: None,
            migrate: true,
        }
    }
}

impl PostgresOptions {
    /// The most connections one storage opens (default 4). Threads beyond it wait for a free
    /// connection; every worker process has its own pool, so the server needs
    /// `max_connections` ≥ workers × this.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long to wait for the server when connecting (default 5 s, or the URL's
    /// `connect_timeout`).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The PostgreSQL schema holding ferrotune's tables (created when missing), instead of
    /// the first one on the connection's `search_path` (usually `public`). Same as the URL
    /// parameter `?schema=name`, which this overrides.
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = Some(name.into());
        self
    }

    /// Whether connecting may create or upgrade ferrotune's tables (default yes). With
    /// `false` (for read-only users and commands), connecting writes nothing and fails when
    /// the tables are missing or older than this library.
    pub fn migrate(mut self, yes: bool) -> Self {
        self.migrate = yes;
        self
    }
}

/// Finished trials read so far, per study: they never change, so each read fetches only the
/// trials finished since the last one, and the live ones.
#[derive(Default)]
struct Cache {
    studies: HashMap<StudyId, StudyCache>,
    by_id: HashMap<TrialId, Arc<FrozenTrial>>,
}

#[derive(Default)]
struct StudyCache {
    /// Every trial finished with a finish sequence value up to this one is in `finished`.
    seen: i64,
    finished: BTreeMap<u64, Arc<FrozenTrial>>,
}

/// Parameter specs met while reading, by distribution JSON then name: trials read from the
/// database share their parameters' names and distributions as trials made in memory do.
#[derive(Default)]
struct Specs {
    by_distribution: HashMap<String, HashMap<String, Param>>,
    len: usize,
}

const MAX_SPECS: usize = 4096;

impl Specs {
    fn param(&mut self, name: &str, distribution: &str, value: ParamValue) -> R<Param> {
        if let Some(proto) = self
            .by_distribution
            .get(distribution)
            .and_then(|m| m.get(name))
        {
            if let Ok(p) = proto
                .distribution()
                .to_internal(&value)
                .and_then(|x| proto.with_internal(x))
            {
                if *p.value() == value {
                    return Ok(p);
                }
            }
            return Ok(Param::new(name, proto.distribution().clone(), value));
        }
        let dist: Distribution = serde_json::from_str(distribution)?;
        let param = Param::new(name, dist, value);
        if self.len >= MAX_SPECS {
            self.by_distribution.clear();
            self.len = 0;
        }
        self.len += 1;
        self.by_distribution
            .entry(distribution.to_owned())
            .or_default()
            .insert(name.to_owned(), param.clone());
        Ok(param)
    }
}

/// A [`Storage`] on PostgreSQL, for one study shared by many worker processes on many
/// machines.
///
/// Every worker opens its own `PostgresStorage` on the same URL. Trial numbers, the trial
/// cap, state changes, and first-writer-wins and compare-and-set attributes are decided by
/// the database inside one statement or transaction each, so workers never need to talk to
/// each other.
/// Heartbeats use the database's clock. Finished trials are cached in memory: reading a
/// study's history fetches only what changed since the last read.
///
/// ```no_run
/// use ferrotune::{Optimize, Study, Trial, TrialError};
/// use ferrotune_postgres::PostgresStorage;
/// use std::sync::Arc;
///
/// let storage = PostgresStorage::connect("postgres://hpo:secret@db.internal:5432/hpo")?;
/// let study = Study::builder()
///     .name("resnet-lr")
///     .storage(Arc::new(storage))
///     .load_if_exists(true)
///     .build()?;
/// study.optimize(
///     |t: &mut Trial| -> Result<f64, TrialError> { Ok(t.suggest_float("x", -1.0, 1.0)?.powi(2)) },
///     Optimize::trials(100),
/// )?;
/// # Ok::<(), ferrotune::Error>(())
/// ```
///
/// The URL is `postgres://user[:password]@host[:port]/database` (or `postgresql://`) with
/// optional parameters: `sslmode` (libpq's `disable`, `prefer`, `require`, `verify-ca`,
/// `verify-full`; TLS needs the `tls` feature), `sslrootcert=/path/ca.pem`, `schema=name`,
/// `connect_timeout=seconds` (default 5), and the driver's others (`application_name`,
/// `options`, `keepalives`, …).
pub struct PostgresStorage {
    pool: Pool,
    url: String,
    schema: Option<String>,
    cache: Mutex<Cache>,
    specs: Mutex<Specs>,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("url", &self.url)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent (inserts of complete values).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn study_key(id: StudyId) -> Result<i64> {
    i64::try_from(id.0).map_err(|_| Error::StudyNotFound(format!("id {}", id.0)))
}

fn trial_key(id: TrialId) -> Result<i64> {
    i64::try_from(id.0).map_err(|_| Error::TrialNotFound(id.to_string()))
}

fn study_not_found(id: StudyId) -> Fail {
    Fail::Ferro(Error::StudyNotFound(format!("id {}", id.0)))
}

fn trial_not_found(id: TrialId) -> Fail {
    Fail::Ferro(Error::TrialNotFound(id.to_string()))
}

fn state_of(s: &str) -> R<TrialState> {
    TrialState::from_str(s)
        .map_err(|_| storage(format!("unknown trial state `{s}` in the database")))
}

fn unsigned(v: i64, what: &str) -> R<u64> {
    u64::try_from(v).map_err(|_| storage(format!("negative {what} {v} in the database")))
}

fn step_key(step: u64) -> Result<i64> {
    i64::try_from(step).map_err(|_| Error::InvalidArgument {
        name: "step",
        reason: format!("step {step} is larger than PostgreSQL's bigint; use steps below 2^63"),
    })
}

/// A parameter value as stored: floats exactly in a float8 column, the rest as JSON.
fn split_value(value: &ParamValue) -> R<(Option<f64>, Option<String>)> {
    Ok(match value {
        ParamValue::Float(x) => (Some(*x), None),
        other => (None, Some(serde_json::to_string(other)?)),
    })
}

/// The error of a write to a trial that did not happen: missing, or no longer live.
fn write_refused(row: Option<&Row>, trial: TrialId) -> R<()> {
    let Some(row) = row else {
        return Err(trial_not_found(trial));
    };
    let state = state_of(row.get::<_, &str>(1))?;
    if state.is_finished() {
        return Err(Fail::Ferro(Error::TrialFinished {
            number: unsigned(row.get(0), "trial number")?,
            state,
        }));
    }
    Ok(())
}

/// How often a compare-and-set of a study attribute tries again when the stored value equals
/// the expected one but the conditional update missed it (its text differs, or another
/// writer changed it in between and back).
const CAS_ROUNDS: usize = 64;

fn kind(user: bool) -> &'static str {
    if user {
        "user"
    } else {
        "system"
    }
}

/// Rows of the trial loader, decoded.
struct Loaded {
    /// k = 0: the study id and (for a study load) its finish sequence; None when missing.
    head: Option<(i64, Option<i64>)>,
    trials: Vec<FrozenTrial>,
}

impl PostgresStorage {
    /// Connects to the database at `url` (see the type's docs for the URL), creating or
    /// upgrading ferrotune's tables when needed. Errors name the server and the fix; they
    /// never show the password.
    pub fn connect(url: &str) -> Result<PostgresStorage> {
        Self::connect_with(url, PostgresOptions::default())
    }

    /// Connects with explicit options.
    pub fn connect_with(url: &str, options: PostgresOptions) -> Result<PostgresStorage> {
        let parsed = url::parse(url)?;
        let schema = options.schema.clone().or(parsed.schema.clone());
        if let Some(s) = &schema {
            if !valid_schema(s) {
                return Err(invalid_schema(s));
            }
        }
        let mut config = parsed.config;
        match options.connect_timeout {
            Some(t) => {
                config.connect_timeout(t);
            }
            None if !parsed.has_connect_timeout => {
                config.connect_timeout(url::DEFAULT_CONNECT_TIMEOUT);
            }
            None => {}
        }
        let connector =
            Connector::new(parsed.ssl_mode, parsed.ssl_root_cert.as_deref()).map_err(|reason| {
                Error::InvalidArgument {
                    name: "url",
                    reason: url::redact(&reason, &parsed.secrets),
                }
            })?;
        let pool = Pool::new(
            Target {
                config,
                connector,
                schema: schema.clone(),
                target: parsed.target,
                secrets: parsed.secrets,
            },
            options.max_connections,
        );
        let mut conn = pool.open()?;
        crate::schema::migrate(&mut conn.client, schema.as_deref(), options.migrate)
            .map_err(|e| pool.error(e))?;
        pool.put_new(conn);
        Ok(PostgresStorage {
            pool,
            url: parsed.redacted,
            schema,
            cache: Mutex::default(),
            specs: Mutex::default(),
        })
    }

    /// The URL this storage was opened with, its password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema holding ferrotune's tables, when one was chosen.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Runs the loader statement and decodes its rows.
    fn load(
        &self,
        c: &mut Conn,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> R<Loaded> {
        let stmt = c.stmt(sql)?;
        let rows = c.client.query(&stmt, params)?;
        let mut head = None;
        let mut trials: Vec<FrozenTrial> = Vec::new();
        let mut rest: Vec<&Row> = Vec::new();
        for row in &rows {
            match row.get::<_, i16>(0) {
                0 => head = Some((row.get::<_, i64>(1), row.get::<_, Option<i64>>(2))),
                1 => {
                    let id: i64 = row.get(1);
                    let values: Option<Vec<f64>> = row.get(7);
                    trials.push(FrozenTrial {
                        id: TrialId(unsigned(id, "trial id")?),
                        number: unsigned(
                            row.get::<_, Option<i64>>(2).unwrap_or(-1),
                            "trial number",
                        )?,
                        state: state_of(row.get::<_, Option<&str>>(3).unwrap_or(""))?,
                        values,
                        params: Params::new(),
                        intermediate_values: BTreeMap::new(),
                        datetime_start: row.get::<_, Option<SystemTime>>(8),
                        datetime_complete: row.get::<_, Option<SystemTime>>(9),
                        user_attrs: BTreeMap::new(),
                        system_attrs: BTreeMap::new(),
                        fail_reason: row.get::<_, Option<String>>(4),
                    });
                }
                _ => rest.push(row),
            }
        }
        if rest.is_empty() {
            return Ok(Loaded { head, trials });
        }
        let index: HashMap<i64, usize> = trials
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.0 as i64, i))
            .collect();
        let mut specs = lock(&self.specs);
        for row in rest {
            let Some(&i) = index.get(&row.get::<_, i64>(1)) else {
                continue;
            };
            let t = &mut trials[i];
            match row.get::<_, i16>(0) {
                2 => {
                    let name: &str = row.get::<_, Option<&str>>(3).unwrap_or("");
                    let distribution: &str = row.get::<_, Option<&str>>(4).unwrap_or("");
                    let value = match row.get::<_, Option<f64>>(6) {
                        Some(x) => ParamValue::Float(x),
                        None => {
                            serde_json::from_str(row.get::<_, Option<&str>>(5).unwrap_or("null"))?
                        }
                    };
                    t.params.insert(specs.param(name, distribution, value)?);
                }
                3 => {
                    let step = unsigned(row.get::<_, Option<i64>>(2).unwrap_or(-1), "step")?;
                    let values: Vec<f64> = row.get::<_, Option<Vec<f64>>>(7).unwrap_or_default();
                    t.intermediate_values.insert(step, values);
                }
                4 => {
                    let key: String = row.get::<_, Option<String>>(4).unwrap_or_default();
                    let value: Value =
                        serde_json::from_str(row.get::<_, Option<&str>>(5).unwrap_or("null"))?;
                    if row.get::<_, Option<&str>>(3) == Some("user") {
                        t.user_attrs.insert(key, value);
                    } else {
                        t.system_attrs.insert(key, value);
                    }
                }
                k => {
                    return Err(storage(format!(
                        "unexpected row kind {k} from the trial loader"
                    )))
                }
            }
        }
        Ok(Loaded { head, trials })
    }

    /// Reads studies from rows of the study queries.
    fn studies_from(rows: &[Row]) -> R<Vec<FrozenStudy>> {
        let mut out: Vec<FrozenStudy> = Vec::new();
        for row in rows {
            let id = StudyId(unsigned(row.get(0), "study id")?);
            if out.last().map(|s| s.id) != Some(id) {
                let directions: Vec<Direction> = serde_json::from_str(row.get::<_, &str>(2))?;
                out.push(FrozenStudy {
                    id,
                    name: row.get::<_, String>(1),
                    directions,
                    user_attrs: BTreeMap::new(),
                    system_attrs: BTreeMap::new(),
                    created: row.get::<_, SystemTime>(3),
                });
            }
            let Some(study) = out.last_mut() else {
                continue;
            };
            if let (Some(kind), Some(key), Some(json)) = (
                row.get::<_, Option<&str>>(4),
                row.get::<_, Option<String>>(5),
                row.get::<_, Option<&str>>(6),
            ) {
                let value: Value = serde_json::from_str(json)?;
                if kind == "user" {
                    study.user_attrs.insert(key, value);
                } else {
                    study.system_attrs.insert(key, value);
                }
            }
        }
        Ok(out)
    }

    fn set_study_attr(&self, id: StudyId, user: bool, key: &str, value: &Value) -> Result<()> {
        let sid = study_key(id)?;
        let json = serde_json::to_string(value)?;
        self.pool.run(|c| {
            let stmt = c.stmt(sql::UPSERT_STUDY_ATTR)?;
            match c.client.execute(&stmt, &[&sid, &kind(user), &key, &json]) {
                Ok(_) => Ok(()),
                Err(e) if code(&e) == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                    Err(study_not_found(id))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    fn set_trial_attr(&self, trial: TrialId, user: bool, key: &str, value: &Value) -> Result<()> {
        let tid = trial_key(trial)?;
        let json = serde_json::to_string(value)?;
        self.pool.run(|c| {
            let stmt = c.stmt(sql::SET_TRIAL_ATTR)?;
            let row = c
                .client
                .query_opt(&stmt, &[&tid, &kind(user), &key, &json])?;
            write_refused(row.as_ref(), trial)
        })
    }

    /// Remembers finished trials read by id.
    fn remember(&self, study: i64, trial: &Arc<FrozenTrial>) {
        if !trial.state.is_finished() {
            return;
        }
        let mut cache = lock(&self.cache);
        cache.by_id.insert(trial.id, trial.clone());
        if let Ok(sid) = u64::try_from(study) {
            if let Some(s) = cache.studies.get_mut(&StudyId(sid)) {
                s.finished.insert(trial.number, trial.clone());
            }
        }
    }
}

impl Storage for PostgresStorage {
    fn create_study(
        &self,
        name: &str,
        directions: &[Direction],
        system_attrs: &BTreeMap<String, Value>,
    ) -> Result<StudyId> {
        let directions = serde_json::to_string(directions)?;
        let attrs: Vec<(&String, String)> = system_attrs
            .iter()
            .map(|(k, v)| Ok((k, serde_json::to_string(v)?)))
            .collect::<Result<_>>()?;
        self.pool.run(|c| {
            let insert = c.stmt(sql::INSERT_STUDY)?;
            let attr = c.stmt(sql::UPSERT_STUDY_ATTR)?;
            let mut tx = c.client.transaction()?;
            let id: i64 = match tx.query_one(&insert, &[&name, &directions]) {
                Ok(row) => row.get(0),
                Err(e) if code(&e) == Some(&SqlState::UNIQUE_VIOLATION) => {
                    return Err(Fail::Ferro(Error::DuplicateStudy(name.to_owned())))
                }
                Err(e) => return Err(e.into()),
            };
            for (key, json) in &attrs {
                tx.execute(&attr, &[&id, &"system", key, json])?;
            }
            tx.commit()?;
            Ok(StudyId(unsigned(id, "study id")?))
        })
    }

    fn study_by_name(&self, name: &str) -> Result<FrozenStudy> {
        let studies = self.pool.read(|c| {
            let stmt = c.stmt(sql::STUDY_BY_NAME)?;
            Self::studies_from(&c.client.query(&stmt, &[&name])?)
        })?;
        studies
            .into_iter()
            .next()
            .ok_or_else(|| Error::StudyNotFound(name.to_owned()))
    }

    fn study(&self, id: StudyId) -> Result<FrozenStudy> {
        let sid = study_key(id)?;
        let studies = self.pool.read(|c| {
            let stmt = c.stmt(sql::STUDY_BY_ID)?;
            Self::studies_from(&c.client.query(&stmt, &[&sid])?)
        })?;
        studies
            .into_iter()
            .next()
            .ok_or_else(|| Error::StudyNotFound(format!("id {}", id.0)))
    }

    fn studies(&self) -> Result<Vec<FrozenStudy>> {
        self.pool.read(|c| {
            let stmt = c.stmt(sql::ALL_STUDIES)?;
            Self::studies_from(&c.client.query(&stmt, &[])?)
        })
    }

    fn delete_study(&self, id: StudyId) -> Result<()> {
        let sid = study_key(id)?;
        let deleted = self.pool.run(|c| {
            let stmt = c.stmt(sql::DELETE_STUDY)?;
            Ok(c.client.query_opt(&stmt, &[&sid])?.is_some())
        })?;
        let mut cache = lock(&self.cache);
        if let Some(s) = cache.studies.remove(&id) {
            for t in s.finished.values() {
                cache.by_id.remove(&t.id);
            }
        }
        if deleted {
            Ok(())
        } else {
            Err(Error::StudyNotFound(format!("id {}", id.0)))
        }
    }

    fn rename_study(&self, id: StudyId, name: &str) -> Result<()> {
        let sid = study_key(id)?;
        self.pool.run(|c| {
            let stmt = c.stmt(sql::RENAME_STUDY)?;
            match c.client.query_opt(&stmt, &[&sid, &name]) {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(study_not_found(id)),
                Err(e) if code(&e) == Some(&SqlState::UNIQUE_VIOLATION) => {
                    Err(Fail::Ferro(Error::DuplicateStudy(name.to_owned())))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    fn set_study_user_attr(&self, id: StudyId, key: &str, value: &Value) -> Result<()> {
        self.set_study_attr(id, true, key, value)
    }

    fn set_study_system_attr(&self, id: StudyId, key: &str, value: &Value) -> Result<()> {
        self.set_study_attr(id, false, key, value)
    }

    fn set_study_system_attr_if_absent(
        &self,
        id: StudyId,
        key: &str,
        value: &Value,
    ) -> Result<Value> {
        let sid = study_key(id)?;
        let json = serde_json::to_string(value)?;
        self.pool.run(|c| {
            let insert = c.stmt(sql::INSERT_STUDY_ATTR_IF_ABSENT)?;
            let read = c.stmt(sql::STUDY_ATTR)?;
            // Attributes are never removed alone, so the second round always finds one;
            // the loop only guards against surprises.
            for _ in 0..3 {
                match c.client.query_opt(&insert, &[&sid, &key, &json]) {
                    Ok(Some(_)) => return Ok(value.clone()),
                    Ok(None) => {}
                    Err(e) if code(&e) == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                        return Err(study_not_found(id))
                    }
                    Err(e) => return Err(e.into()),
                }
                // Someone else wrote it first (the insert waited for their commit).
                match c.client.query_opt(&read, &[&sid, &"system", &key])? {
                    None => return Err(study_not_found(id)),
                    Some(row) => {
                        if let Some(stored) = row.get::<_, Option<&str>>(0) {
                            return Ok(serde_json::from_str(stored)?);
                        }
                    }
                }
            }
            Err(storage(format!(
                "study attribute `{key}` kept disappearing while it was set"
            )))
        })
    }

    fn compare_and_set_study_system_attr(
        &self,
        id: StudyId,
        key: &str,
        expected: Option<&Value>,
        new: &Value,
    ) -> Result<bool> {
        let sid = study_key(id)?;
        let json = serde_json::to_string(new)?;
        let Some(expected) = expected else {
            // Absent: the insert wins exactly when no row exists (it waits for a concurrent
            // inserter's commit, then does nothing).
            return self.pool.run(|c| {
                let insert = c.stmt(sql::INSERT_STUDY_ATTR_IF_ABSENT)?;
                match c.client.query_opt(&insert, &[&sid, &key, &json]) {
                    Ok(row) => Ok(row.is_some()),
                    Err(e) if code(&e) == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                        Err(study_not_found(id))
                    }
                    Err(e) => Err(e.into()),
                }
            });
        };
        let expected_json = serde_json::to_string(expected)?;
        self.pool.run(|c| {
            let update = c.stmt(sql::COMPARE_AND_SET_STUDY_ATTR)?;
            let read = c.stmt(sql::STUDY_ATTR)?;
            // Every write stores `serde_json::to_string`'s text, so the expected value's text
            // is nearly always the stored one and one conditional update decides. Equal values
            // with other text (`-0.0` and `0.0`) are found by reading the stored text and
            // comparing it as JSON; the update is then retried on that exact text, so the
            // decision is still one atomic statement.
            let mut text = expected_json.clone();
            for _ in 0..CAS_ROUNDS {
                if c.client
                    .query_opt(&update, &[&sid, &key, &text, &json])?
                    .is_some()
                {
                    return Ok(true);
                }
                let Some(row) = c.client.query_opt(&read, &[&sid, &"system", &key])? else {
                    return Err(study_not_found(id));
                };
                // Absent, or a value that differs: the compare failed when it was read.
                let Some(stored) = row.get::<_, Option<String>>(0) else {
                    return Ok(false);
                };
                if stored != text && serde_json::from_str::<Value>(&stored)? != *expected {
                    return Ok(false);
                }
                // An equal value (or the text tried, back again): the update decides, unless
                // another writer changes the value once more in between.
                text = stored;
            }
            Err(storage(format!(
                "study attribute `{key}` kept changing to equal values while it was compared"
            )))
        })
    }

    fn study_system_attr(&self, id: StudyId, key: &str) -> Result<Option<Value>> {
        let sid = study_key(id)?;
        self.pool.read(|c| {
            let stmt = c.stmt(sql::STUDY_ATTR)?;
            match c.client.query_opt(&stmt, &[&sid, &"system", &key])? {
                None => Err(study_not_found(id)),
                Some(row) => match row.get::<_, Option<&str>>(0) {
                    Some(json) => Ok(Some(serde_json::from_str(json)?)),
                    None => Ok(None),
                },
            }
        })
    }

    fn create_trial(&self, study: StudyId, max_trials: Option<u64>) -> Result<Option<FrozenTrial>> {
        let sid = study_key(study)?;
        // A cap beyond bigint is no cap.
        let max: Option<i64> = max_trials.and_then(|m| i64::try_from(m).ok());
        self.pool.run(|c| {
            let stmt = c.stmt(sql::CREATE_TRIAL)?;
            match c.client.query_opt(&stmt, &[&sid, &max])? {
                Some(row) => {
                    let mut t = FrozenTrial::new_running(
                        TrialId(unsigned(row.get(0), "trial id")?),
                        unsigned(row.get(1), "trial number")?,
                    );
                    t.datetime_start = row.get::<_, Option<SystemTime>>(2);
                    Ok(Some(t))
                }
                None => {
                    let exists = c.stmt(sql::STUDY_EXISTS)?;
                    if c.client.query_opt(&exists, &[&sid])?.is_none() {
                        Err(study_not_found(study))
                    } else {
                        Ok(None)
                    }
                }
            }
        })
    }

    fn add_trial(&self, study: StudyId, template: &FrozenTrial) -> Result<FrozenTrial> {
        let sid = study_key(study)?;
        let finished = template.state.is_finished();
        let mut params = Vec::with_capacity(template.params.len());
        for p in template.params.as_slice() {
            let (float, json) = split_value(p.value()).map_err(|e| self.pool.error(e))?;
            params.push((
                p.name(),
                serde_json::to_string(p.distribution())?,
                float,
                json,
            ));
        }
        let mut intermediate = Vec::with_capacity(template.intermediate_values.len());
        for (&step, values) in &template.intermediate_values {
            intermediate.push((step_key(step)?, values));
        }
        let mut attrs = Vec::new();
        for (user, map) in [
            (true, &template.user_attrs),
            (false, &template.system_attrs),
        ] {
            for (k, v) in map {
                attrs.push((kind(user), k, serde_json::to_string(v)?));
            }
        }
        let (id, number) = self.pool.run(|c| {
            let allocate = c.stmt(sql::ALLOCATE_NUMBER)?;
            let insert = c.stmt(sql::INSERT_TRIAL)?;
            let param = c.stmt(sql::INSERT_PARAM)?;
            let inter = c.stmt(sql::INSERT_INTERMEDIATE)?;
            let attr = c.stmt(sql::INSERT_TRIAL_ATTR)?;
            let mut tx = c.client.transaction()?;
            let Some(row) = tx.query_opt(&allocate, &[&sid, &finished])? else {
                return Err(study_not_found(study));
            };
            let number: i64 = row.get(0);
            let seq: Option<i64> = finished.then(|| row.get(1));
            let id: i64 = tx
                .query_one(
                    &insert,
                    &[
                        &sid,
                        &number,
                        &template.state.as_str(),
                        &template.values,
                        &template.datetime_start,
                        &template.datetime_complete,
                        &template.fail_reason,
                        &seq,
                    ],
                )?
                .get(0);
            for (name, dist, float, json) in &params {
                tx.execute(&param, &[&id, name, dist, float, json])?;
            }
            for (step, values) in &intermediate {
                tx.execute(&inter, &[&id, step, values])?;
            }
            for (k, key, json) in &attrs {
                tx.execute(&attr, &[&id, k, key, json])?;
            }
            tx.commit()?;
            Ok((unsigned(id, "trial id")?, unsigned(number, "trial number")?))
        })?;
        let mut stored = template.clone();
        stored.id = TrialId(id);
        stored.number = number;
        Ok(stored)
    }

    fn set_trial_param(&self, trial: TrialId, param: &Param) -> Result<()> {
        let tid = trial_key(trial)?;
        let mut dist = serde_json::to_string(param.distribution())?;
        let (float, json) = split_value(param.value()).map_err(|e| self.pool.error(e))?;
        let name = param.name();
        self.pool.run(|c| {
            let stmt = c.stmt(sql::SET_PARAM)?;
            for _ in 0..2 {
                let row = c
                    .client
                    .query_opt(&stmt, &[&tid, &name, &dist, &float, &json])?;
                write_refused(row.as_ref(), trial)?;
                let Some(row) = row else {
                    return Err(trial_not_found(trial));
                };
                if row.get::<_, i64>(3) > 0 {
                    return Ok(());
                }
                // Not written: the name holds another distribution's JSON. The same
                // distribution written by another version may differ in form only.
                let stored: String = row.get::<_, Option<String>>(2).unwrap_or_default();
                let first: Distribution = serde_json::from_str(&stored)?;
                if first == *param.distribution() {
                    dist = stored;
                    continue;
                }
                return Err(Fail::Ferro(Error::IncompatibleDistribution {
                    name: name.to_owned(),
                    first: first.to_string(),
                    second: param.distribution().to_string(),
                }));
            }
            Err(storage(format!("parameter `{name}` could not be written")))
        })
    }

    fn set_trial_intermediate_value(
        &self,
        trial: TrialId,
        step: u64,
        values: &[f64],
    ) -> Result<()> {
        let tid = trial_key(trial)?;
        let step = step_key(step)?;
        self.pool.run(|c| {
            let stmt = c.stmt(sql::SET_INTERMEDIATE)?;
            let row = c.client.query_opt(&stmt, &[&tid, &step, &values])?;
            write_refused(row.as_ref(), trial)
        })
    }

    fn set_trial_user_attr(&self, trial: TrialId, key: &str, value: &Value) -> Result<()> {
        self.set_trial_attr(trial, true, key, value)
    }

    fn set_trial_system_attr(&self, trial: TrialId, key: &str, value: &Value) -> Result<()> {
        self.set_trial_attr(trial, false, key, value)
    }

    fn set_trial_state(
        &self,
        trial: TrialId,
        expected: TrialState,
        new: TrialState,
        values: Option<&[f64]>,
        fail_reason: Option<&str>,
    ) -> Result<bool> {
        let tid = trial_key(trial)?;
        let finishing = new.is_finished();
        self.pool.run(|c| {
            let stmt = c.stmt(sql::SET_STATE)?;
            let won = c
                .client
                .query_opt(
                    &stmt,
                    &[
                        &tid,
                        &expected.as_str(),
                        &new.as_str(),
                        &finishing,
                        &values,
                        &fail_reason,
                    ],
                )?
                .is_some();
            if won {
                return Ok(true);
            }
            let read = c.stmt(sql::TRIAL_STATE)?;
            let Some(row) = c.client.query_opt(&read, &[&tid])? else {
                return Err(trial_not_found(trial));
            };
            let state = state_of(row.get::<_, &str>(1))?;
            if expected.is_finished() && state == expected {
                return Err(Fail::Ferro(Error::TrialFinished {
                    number: unsigned(row.get(0), "trial number")?,
                    state,
                }));
            }
            Ok(false)
        })
    }

    fn record_heartbeat(&self, trial: TrialId) -> Result<()> {
        let tid = trial_key(trial)?;
        self.pool.run(|c| {
            let stmt = c.stmt(sql::HEARTBEAT)?;
            if c.client.query_opt(&stmt, &[&tid])?.is_some() {
                return Ok(());
            }
            let read = c.stmt(sql::TRIAL_STATE)?;
            let Some(row) = c.client.query_opt(&read, &[&tid])? else {
                return Err(trial_not_found(trial));
            };
            Err(Fail::Ferro(Error::TrialFinished {
                number: unsigned(row.get(0), "trial number")?,
                state: state_of(row.get::<_, &str>(1))?,
            }))
        })
    }

    fn stale_trials(&self, study: StudyId, grace: Duration) -> Result<Vec<TrialId>> {
        let sid = study_key(study)?;
        // make_interval takes at most a few thousand years; a century is "never".
        let grace = grace.as_secs_f64().min(100.0 * 365.0 * 86_400.0);
        self.pool.read(|c| {
            let stmt = c.stmt(sql::STALE)?;
            let rows = c.client.query(&stmt, &[&sid, &grace])?;
            if rows.is_empty() {
                return Err(study_not_found(study));
            }
            rows.iter()
                .filter_map(|r| r.get::<_, Option<i64>>(0))
                .map(|id| Ok(TrialId(unsigned(id, "trial id")?)))
                .collect()
        })
    }

    fn trial(&self, trial: TrialId) -> Result<Arc<FrozenTrial>> {
        if let Some(t) = lock(&self.cache).by_id.get(&trial) {
            return Ok(t.clone());
        }
        let tid = trial_key(trial)?;
        let loaded = self.pool.read(|c| self.load(c, sql::LOAD_TRIAL, &[&tid]))?;
        let study = loaded.head.map(|h| h.0).unwrap_or(-1);
        let t = loaded
            .trials
            .into_iter()
            .next()
            .map(Arc::new)
            .ok_or_else(|| Error::TrialNotFound(trial.to_string()))?;
        self.remember(study, &t);
        Ok(t)
    }

    fn trials(
        &self,
        study: StudyId,
        states: Option<&[TrialState]>,
    ) -> Result<Vec<Arc<FrozenTrial>>> {
        let sid = study_key(study)?;
        let include_live = states.is_none_or(|s| s.iter().any(|st| !st.is_finished()));
        let seen = lock(&self.cache).studies.get(&study).map_or(0, |s| s.seen);
        let loaded = self
            .pool
            .read(|c| self.load(c, sql::LOAD_STUDY_TRIALS, &[&sid, &seen, &include_live]))?;
        let mut cache = lock(&self.cache);
        let Some((_, Some(seq))) = loaded.head else {
            if let Some(s) = cache.studies.remove(&study) {
                for t in s.finished.values() {
                    cache.by_id.remove(&t.id);
                }
            }
            return Err(Error::StudyNotFound(format!("id {}", study.0)));
        };
        let Cache { studies, by_id } = &mut *cache;
        let entry = studies.entry(study).or_default();
        let mut live = Vec::new();
        for t in loaded.trials {
            let t = Arc::new(t);
            if t.state.is_finished() {
                by_id.insert(t.id, t.clone());
                entry.finished.insert(t.number, t);
            } else {
                live.push(t);
            }
        }
        entry.seen = entry.seen.max(seq);
        let wanted = |t: &FrozenTrial| states.is_none_or(|s| s.contains(&t.state));
        live.retain(|t| wanted(t));
        live.sort_unstable_by_key(|t| t.number);
        let mut out = Vec::with_capacity(entry.finished.len() + live.len());
        let mut live = live.into_iter().peekable();
        for t in entry.finished.values() {
            while let Some(l) = live.next_if(|l| l.number < t.number) {
                out.push(l);
            }
            if wanted(t) {
                out.push(t.clone());
            }
        }
        out.extend(live);
        Ok(out)
    }

    fn n_trials(&self, study: StudyId, states: Option<&[TrialState]>) -> Result<u64> {
        let sid = study_key(study)?;
        let states: Option<Vec<&str>> = states.map(|s| s.iter().map(|st| st.as_str()).collect());
        self.pool.read(|c| {
            let stmt = c.stmt(sql::COUNT_TRIALS)?;
            match c.client.query_opt(&stmt, &[&sid, &states])? {
                None => Err(study_not_found(study)),
                Some(row) => unsigned(row.get(0), "count"),
            }
        })
    }

    fn claim_waiting_trial(&self, study: StudyId) -> Result<Option<Arc<FrozenTrial>>> {
        let sid = study_key(study)?;
        let claimed = self.pool.run(|c| {
            let stmt = c.stmt(sql::CLAIM_WAITING)?;
            match c.client.query_opt(&stmt, &[&sid])? {
                None => Err(study_not_found(study)),
                Some(row) => Ok(row.get::<_, Option<i64>>(0)),
            }
        })?;
        match claimed {
            None => Ok(None),
            Some(id) => {
                let id = u64::try_from(id).map_err(|_| {
                    Error::Storage(format!("negative trial id {id} in the database"))
                })?;
                self.trial(TrialId(id)).map(Some)
            }
        }
    }
}
