//! Every SQL statement of the storage. All values are bound parameters.

/// States in which a trial may still be written to.
macro_rules! live_states {
    () => {
        "('running', 'waiting', 'paused')"
    };
}

pub(crate) const INSERT_STUDY: &str =
    "INSERT INTO ferrotune_studies (name, directions) VALUES ($1, $2) RETURNING id";

pub(crate) const UPSERT_STUDY_ATTR: &str = "INSERT INTO ferrotune_study_attrs \
     (study_id, kind, key, value_json) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (study_id, kind, key) DO UPDATE SET value_json = EXCLUDED.value_json";

pub(crate) const INSERT_STUDY_ATTR_IF_ABSENT: &str = "INSERT INTO ferrotune_study_attrs \
     (study_id, kind, key, value_json) VALUES ($1, 'system', $2, $3) \
     ON CONFLICT (study_id, kind, key) DO NOTHING RETURNING value_json";

/// Replaces a system attribute of a study when its stored text is `$3`; returns a row when it
/// did. Under READ COMMITTED, an update that waited for a concurrent writer checks `$3`
/// again against the row that writer committed, so two callers can never both replace one
/// value.
pub(crate) const COMPARE_AND_SET_STUDY_ATTR: &str = "UPDATE ferrotune_study_attrs \
     SET value_json = $4 WHERE study_id = $1 AND kind = 'system' AND key = $2 \
     AND value_json = $3 RETURNING 1";

/// One study attribute, with a row (NULL value) when the study exists without it.
pub(crate) const STUDY_ATTR: &str = "SELECT a.value_json FROM ferrotune_studies s \
     LEFT JOIN ferrotune_study_attrs a ON a.study_id = s.id AND a.kind = $2 AND a.key = $3 \
     WHERE s.id = $1";

macro_rules! study_select {
    ($where:literal) => {
        concat!(
            "SELECT s.id, s.name, s.directions, s.created, a.kind, a.key, a.value_json \
             FROM ferrotune_studies s \
             LEFT JOIN ferrotune_study_attrs a ON a.study_id = s.id ",
            $where,
            " ORDER BY s.id"
        )
    };
}
pub(crate) const STUDY_BY_ID: &str = study_select!("WHERE s.id = $1");
pub(crate) const STUDY_BY_NAME: &str = study_select!("WHERE s.name = $1");
pub(crate) const ALL_STUDIES: &str = study_select!("");

pub(crate) const DELETE_STUDY: &str = "DELETE FROM ferrotune_studies WHERE id = $1 RETURNING id";
pub(crate) const RENAME_STUDY: &str =
    "UPDATE ferrotune_studies SET name = $2 WHERE id = $1 RETURNING id";
pub(crate) const STUDY_EXISTS: &str = "SELECT 1 FROM ferrotune_studies WHERE id = $1";

/// A new Running trial with the next number, within the cap ($2, NULL for none). The study
/// row's lock serializes numbering.
pub(crate) const CREATE_TRIAL: &str = "WITH s AS ( \
       UPDATE ferrotune_studies SET next_number = next_number + 1 \
       WHERE id = $1 AND ($2::int8 IS NULL OR next_number < $2) \
       RETURNING id, next_number - 1 AS number) \
     INSERT INTO ferrotune_trials (study_id, number, state, datetime_start) \
     SELECT id, number, 'running', clock_timestamp() FROM s \
     RETURNING id, number, datetime_start";

/// Allocates a number (and, for a finished trial, a finish sequence value) for `add_trial`.
pub(crate) const ALLOCATE_NUMBER: &str = "UPDATE ferrotune_studies \
     SET next_number = next_number + 1, finish_seq = finish_seq + CASE WHEN $2 THEN 1 ELSE 0 END \
     WHERE id = $1 RETURNING next_number - 1, finish_seq";

pub(crate) const INSERT_TRIAL: &str = "INSERT INTO ferrotune_trials \
     (study_id, number, state, vals, datetime_start, datetime_complete, fail_reason, finish_seq) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";

pub(crate) const INSERT_PARAM: &str = "INSERT INTO ferrotune_trial_params \
     (trial_id, name, distribution, value_float, value_json) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const INSERT_INTERMEDIATE: &str =
    "INSERT INTO ferrotune_trial_intermediate (trial_id, step, vals) VALUES ($1, $2, $3)";
pub(crate) const INSERT_TRIAL_ATTR: &str = "INSERT INTO ferrotune_trial_attrs \
     (trial_id, kind, key, value_json) VALUES ($1, $2, $3, $4)";

/// Sets a parameter of a live trial, unless the name holds another distribution. The trial
/// row is share-locked so that it cannot finish meanwhile. Returns the trial's number and
/// state, the distribution stored before, and whether the write happened; no row when the
/// trial does not exist.
pub(crate) const SET_PARAM: &str = concat!(
    "WITH t AS (SELECT id, number, state FROM ferrotune_trials WHERE id = $1 FOR SHARE), \
     old AS (SELECT distribution FROM ferrotune_trial_params WHERE trial_id = $1 AND name = $2), \
     ins AS ( \
       INSERT INTO ferrotune_trial_params (trial_id, name, distribution, value_float, value_json) \
       SELECT t.id, $2, $3, $4, $5 FROM t \
       WHERE t.state IN ",
    live_states!(),
    " AND NOT EXISTS (SELECT 1 FROM old WHERE old.distribution <> $3) \
       ON CONFLICT (trial_id, name) DO UPDATE \
         SET value_float = EXCLUDED.value_float, value_json = EXCLUDED.value_json \
       RETURNING 1) \
     SELECT t.number, t.state, (SELECT distribution FROM old), \
       (SELECT count(*) FROM ins) FROM t"
);

/// Sets (or replaces) an intermediate value of a live trial; returns its number and state.
pub(crate) const SET_INTERMEDIATE: &str = concat!(
    "WITH t AS (SELECT id, number, state FROM ferrotune_trials WHERE id = $1 FOR SHARE), \
     ins AS ( \
       INSERT INTO ferrotune_trial_intermediate (trial_id, step, vals) \
       SELECT t.id, $2, $3 FROM t WHERE t.state IN ",
    live_states!(),
    " ON CONFLICT (trial_id, step) DO UPDATE SET vals = EXCLUDED.vals \
       RETURNING 1) \
     SELECT t.number, t.state FROM t"
);

/// Sets an attribute of a live trial ($2 = 'user' or 'system'); returns its number and state.
pub(crate) const SET_TRIAL_ATTR: &str = concat!(
    "WITH t AS (SELECT id, number, state FROM ferrotune_trials WHERE id = $1 FOR SHARE), \
     ins AS ( \
       INSERT INTO ferrotune_trial_attrs (trial_id, kind, key, value_json) \
       SELECT t.id, $2, $3, $4 FROM t WHERE t.state IN ",
    live_states!(),
    " ON CONFLICT (trial_id, kind, key) DO UPDATE SET value_json = EXCLUDED.value_json \
       RETURNING 1) \
     SELECT t.number, t.state FROM t"
);

/// The compare-and-set of a trial's state, in one statement: the trial row is locked only
/// while it is live and in the expected state ($2); finishing ($4) bumps the study's finish
/// sequence under the study row's lock and stamps it on the trial. Returns a row when this
/// caller won.
pub(crate) const SET_STATE: &str = concat!(
    "WITH t AS ( \
       SELECT id, study_id FROM ferrotune_trials \
       WHERE id = $1 AND state = $2 AND state IN ",
    live_states!(),
    " FOR UPDATE), \
     s AS ( \
       UPDATE ferrotune_studies SET finish_seq = ferrotune_studies.finish_seq + 1 \
       FROM t WHERE ferrotune_studies.id = t.study_id AND $4::bool \
       RETURNING ferrotune_studies.finish_seq) \
     UPDATE ferrotune_trials u SET \
       state = $3, \
       vals = coalesce($5, u.vals), \
       fail_reason = coalesce($6, u.fail_reason), \
       heartbeat = NULL, \
       datetime_start = CASE WHEN $3 = 'running' THEN clock_timestamp() ELSE u.datetime_start END, \
       datetime_complete = CASE WHEN $4::bool THEN clock_timestamp() ELSE u.datetime_complete END, \
       finish_seq = (SELECT finish_seq FROM s) \
     FROM t WHERE u.id = t.id RETURNING u.id"
);

pub(crate) const TRIAL_STATE: &str = "SELECT number, state FROM ferrotune_trials WHERE id = $1";

pub(crate) const HEARTBEAT: &str = "UPDATE ferrotune_trials SET heartbeat = clock_timestamp() \
     WHERE id = $1 AND state = 'running' RETURNING 1";

/// Running trials of study $1 whose heartbeat is older than $2 seconds by the database's
/// clock; one row with NULL when the study exists and none is stale.
pub(crate) const STALE: &str = "SELECT t.id FROM ferrotune_studies s \
     LEFT JOIN ferrotune_trials t ON t.study_id = s.id AND t.state = 'running' \
       AND t.heartbeat < clock_timestamp() - make_interval(secs => $2) \
     WHERE s.id = $1 ORDER BY t.id";

/// Claims the lowest-numbered Waiting trial nobody else is claiming; one row (NULL when
/// nothing was claimed) when the study exists.
pub(crate) const CLAIM_WAITING: &str = "WITH c AS ( \
       UPDATE ferrotune_trials SET state = 'running', datetime_start = clock_timestamp(), \
         heartbeat = NULL \
       WHERE id = (SELECT id FROM ferrotune_trials WHERE study_id = $1 AND state = 'waiting' \
                   ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED) \
       RETURNING id) \
     SELECT (SELECT id FROM c) FROM ferrotune_studies s WHERE s.id = $1";

/// The number of trials of study $1 in states $2 (all when NULL); no row when the study
/// does not exist.
pub(crate) const COUNT_TRIALS: &str = "SELECT (SELECT count(*) FROM ferrotune_trials t \
       WHERE t.study_id = s.id AND ($2::text[] IS NULL OR t.state = ANY($2))) \
     FROM ferrotune_studies s WHERE s.id = $1";

/// Everything about the trials selected by the CTE `t`, in one statement (one snapshot, one
/// round trip), as tagged rows (`= ANY (ARRAY(…))` keeps the detail tables on their primary
/// key indexes, where a join with the CTE would scan them whole):
/// - k = 0: (tid = study id, n = the study's finish_seq);
/// - k = 1: a trial (tid, n = number, a = state, b = fail_reason, v = values, t1/t2 = times);
/// - k = 2: a parameter (a = name, b = distribution, c = value_json, f = value_float);
/// - k = 3: an intermediate value (n = step, v = values);
/// - k = 4: an attribute (a = kind, b = key, c = value_json).
macro_rules! load_trials {
    ($trials:expr, $head:expr) => {
        concat!(
            "WITH t AS MATERIALIZED (",
            $trials,
            ") ",
            $head,
            " UNION ALL \
             SELECT 1::int2, t.id, t.number, t.state, t.fail_reason, NULL, NULL, t.vals, \
               t.datetime_start, t.datetime_complete FROM t \
             UNION ALL \
             SELECT 2::int2, p.trial_id, NULL, p.name, p.distribution, p.value_json, \
               p.value_float, NULL, NULL, NULL \
             FROM ferrotune_trial_params p WHERE p.trial_id = ANY (ARRAY(SELECT id FROM t)) \
             UNION ALL \
             SELECT 3::int2, i.trial_id, i.step, NULL, NULL, NULL, NULL, i.vals, NULL, NULL \
             FROM ferrotune_trial_intermediate i WHERE i.trial_id = ANY (ARRAY(SELECT id FROM t)) \
             UNION ALL \
             SELECT 4::int2, x.trial_id, NULL, x.kind, x.key, x.value_json, NULL, NULL, NULL, \
               NULL FROM ferrotune_trial_attrs x WHERE x.trial_id = ANY (ARRAY(SELECT id FROM t))"
        )
    };
}

/// The columns the loader reads from `ferrotune_trials`.
macro_rules! trial_columns {
    () => {
        "SELECT id, study_id, number, state, vals, datetime_start, datetime_complete, \
         fail_reason FROM ferrotune_trials "
    };
}

/// The trials of study $1 finished after finish_seq $2 (an index range), and (when $3) the
/// live ones (a partial index).
pub(crate) const LOAD_STUDY_TRIALS: &str = load_trials!(
    concat!(
        trial_columns!(),
        "WHERE study_id = $1 AND finish_seq > $2 UNION ALL ",
        trial_columns!(),
        "WHERE study_id = $1 AND finish_seq IS NULL AND $3::bool"
    ),
    "SELECT 0::int2 AS k, s.id AS tid, s.finish_seq AS n, NULL::text AS a, NULL::text AS b, \
       NULL::text AS c, NULL::float8 AS f, NULL::float8[] AS v, NULL::timestamptz AS t1, \
       NULL::timestamptz AS t2 FROM ferrotune_studies s WHERE s.id = $1"
);

/// Trial $1 (its k = 0 row carries its study id).
pub(crate) const LOAD_TRIAL: &str = load_trials!(
    concat!(trial_columns!(), "WHERE id = $1"),
    "SELECT 0::int2 AS k, t.study_id AS tid, NULL::int8 AS n, NULL::text AS a, NULL::text AS b, \
       NULL::text AS c, NULL::float8 AS f, NULL::float8[] AS v, NULL::timestamptz AS t1, \
       NULL::timestamptz AS t2 FROM t"
);
