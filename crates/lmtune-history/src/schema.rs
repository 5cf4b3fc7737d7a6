//! The store's schema and its migrations. A store records the version it
//! was written by in `schema_version`; opening one applies the migrations it
//! lacks, each in its own transaction, and refuses a store written by a
//! newer lmtune (it would misread tables it does not know).

use rusqlite::{Connection, OptionalExtension};

/// Migration `i` brings a store from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: runs keyed by (run_id, hash of their records), each in one
    // environment; one row per point and metric with the run's mean.
    "CREATE TABLE environments (
        id INTEGER PRIMARY KEY,
        label TEXT NOT NULL,
        -- The fingerprint of the first run seen in it (JSON), matched with
        -- Fingerprint::differences.
        fingerprint TEXT NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL,
        records_sha256 TEXT NOT NULL,
        commit_sha TEXT NOT NULL,
        branch TEXT NOT NULL,
        -- RFC 3339 UTC (sorts as text).
        commit_time TEXT NOT NULL,
        added_at TEXT NOT NULL,
        environment_id INTEGER NOT NULL REFERENCES environments(id),
        UNIQUE (run_id, records_sha256)
    );
    CREATE INDEX runs_by_series ON runs (environment_id, branch, commit_time);
    CREATE INDEX runs_by_commit ON runs (commit_sha);
    CREATE TABLE points (
        run INTEGER NOT NULL REFERENCES runs(id),
        model TEXT NOT NULL,
        test TEXT NOT NULL,
        knobs TEXT NOT NULL,
        metric TEXT NOT NULL,
        mean REAL NOT NULL,
        sd REAL,
        repetitions INTEGER NOT NULL,
        PRIMARY KEY (run, model, test, knobs, metric)
    );",
];

/// The version this lmtune writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The store's version before migrating (0: a new file).
pub(crate) fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    Ok(conn
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .optional()?
        .flatten()
        .unwrap_or(0))
}

/// Applies the migrations after `from`.
pub(crate) fn migrate(conn: &mut Connection, from: i64) -> rusqlite::Result<()> {
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [i as i64 + 1],
        )?;
        tx.commit()?;
    }
    Ok(())
}
