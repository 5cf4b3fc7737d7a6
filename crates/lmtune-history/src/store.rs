//! The store: one SQLite file (WAL mode), runs filed by commit, branch and
//! environment. Every write is one transaction: a failure half-way through
//! leaves the store as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lmtune_core::fingerprint::Fingerprint;
use lmtune_core::record::Record;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::points::{metric_name, parse_metric, point_means, PointMean};
use crate::schema;
use crate::HistoryError;

/// Where `lmtune history` keeps its store unless told `--db`.
pub const DEFAULT_DB: &str = ".lmtune/history.sqlite";

/// What a run is filed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMeta {
    pub commit: String,
    pub branch: String,
    /// RFC 3339 UTC, see [`crate::normalize_time`].
    pub commit_time: String,
}

/// What `add_run` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    New {
        run: i64,
        environment: i64,
        /// The run opened a new series: no stored environment matched its fingerprint.
        new_environment: bool,
        points: usize,
    },
    /// The same run (run_id and records) is stored already; nothing changed.
    AlreadyStored { run: i64 },
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    pub run_id: String,
    pub commit: String,
    pub branch: String,
    pub commit_time: String,
    pub environment: i64,
}

/// One series: the runs of one branch in one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub environment: i64,
    pub environment_label: String,
    pub branch: String,
    pub runs: usize,
    pub commits: usize,
    pub first_time: String,
    pub last_time: String,
}

pub struct Store {
    pub(crate) conn: Connection,
    path: PathBuf,
}

/// Two fingerprints are one environment when `compare` would compare them
/// without --allow-different-environment — except for lmtune's own commit,
/// which is what a history of lmtune's commits is about.
fn same_environment(a: &Fingerprint, b: &Fingerprint) -> bool {
    a.differences(b)
        .iter()
        .all(|d| d.starts_with("lmtune_commit:"))
}

fn environment_label(f: &Fingerprint) -> String {
    let host = if f.host.hostname.is_empty() {
        f.host.cpu_model.clone()
    } else {
        f.host.label()
    };
    format!(
        "{host}, {} {}, {}",
        f.backend, f.backend_version, f.model.file_name
    )
}

/// The hash that, with the run_id, identifies a run: the same file added
/// twice hashes the same; a run resumed with more records does not.
fn records_sha256(records: &[&Record]) -> String {
    let mut h = Sha256::new();
    for r in records {
        h.update(serde_json::to_string(r).unwrap_or_default().as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Opens the store at `path`, creating it (and its folder) if needed,
    /// and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, HistoryError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| HistoryError::CreateDir {
                path: path.to_path_buf(),
                source,
            })?;
        }
        Self::open_inner(path)
    }

    /// Opens an existing store (for reading commands: a missing file is an error, not a new store).
    pub fn open_existing(path: &Path) -> Result<Store, HistoryError> {
        if !path.exists() {
            return Err(HistoryError::Missing {
                path: path.to_path_buf(),
            });
        }
        Self::open_inner(path)
    }

    fn open_inner(path: &Path) -> Result<Store, HistoryError> {
        let open_err = |source| HistoryError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(open_err)?;
        // WAL: readers (a `check`) do not block the writer (an `add`) and a
        // crash mid-write leaves the last committed state.
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
            .map_err(open_err)?;
        conn.execute_batch("PRAGMA foreign_keys = ON")
            .map_err(open_err)?;
        let found = schema::version(&conn).map_err(open_err)?;
        if found > schema::SCHEMA_VERSION {
            return Err(HistoryError::NewerSchema {
                path: path.to_path_buf(),
                found,
                known: schema::SCHEMA_VERSION,
            });
        }
        schema::migrate(&mut conn, found).map_err(open_err)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn sql<T>(&self, r: rusqlite::Result<T>) -> Result<T, HistoryError> {
        r.map_err(|source| HistoryError::Sql {
            path: self.path.clone(),
            source,
        })
    }

    /// The schema version of the open store.
    pub fn schema_version(&self) -> Result<i64, HistoryError> {
        self.sql(schema::version(&self.conn))
    }

    /// Adds one run (the records of one run_id). Adding the same run again
    /// changes nothing.
    pub fn add_run(&mut self, meta: &RunMeta, records: &[&Record]) -> Result<Added, HistoryError> {
        let run_id = records
            .first()
            .map(|r| r.run_id.clone())
            .unwrap_or_default();
        let owned: Vec<Record> = records.iter().map(|r| (*r).clone()).collect();
        let points = point_means(&owned);
        if points.is_empty() {
            return Err(HistoryError::NothingToAdd { run_id });
        }
        let hash = records_sha256(records);
        let result = self.add_in_transaction(meta, &run_id, &hash, &owned[0].fingerprint, &points);
        self.sql(result)
    }

    fn add_in_transaction(
        &mut self,
        meta: &RunMeta,
        run_id: &str,
        hash: &str,
        fingerprint: &Fingerprint,
        points: &[PointMean],
    ) -> rusqlite::Result<Added> {
        let tx = self.conn.transaction()?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM runs WHERE run_id = ?1 AND records_sha256 = ?2",
                params![run_id, hash],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(run) = existing {
            return Ok(Added::AlreadyStored { run });
        }
        let mut environment = None;
        {
            let mut stmt = tx.prepare("SELECT id, fingerprint FROM environments ORDER BY id")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (id, json) = row?;
                let stored: Option<Fingerprint> = serde_json::from_str(&json).ok();
                if stored.is_some_and(|s| same_environment(&s, fingerprint)) {
                    environment = Some(id);
                    break;
                }
            }
        }
        let new_environment = environment.is_none();
        let environment = match environment {
            Some(id) => id,
            None => {
                tx.execute(
                    "INSERT INTO environments (label, fingerprint) VALUES (?1, ?2)",
                    params![
                        environment_label(fingerprint),
                        serde_json::to_string(fingerprint).unwrap_or_default()
                    ],
                )?;
                tx.last_insert_rowid()
            }
        };
        tx.execute(
            "INSERT INTO runs (run_id, records_sha256, commit_sha, branch, commit_time, added_at, environment_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                run_id,
                hash,
                meta.commit,
                meta.branch,
                meta.commit_time,
                crate::now_utc(),
                environment
            ],
        )?;
        let run = tx.last_insert_rowid();
        {
            let mut stmt = tx.prepare(
                "INSERT INTO points (run, model, test, knobs, metric, mean, sd, repetitions)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for p in points {
                stmt.execute(params![
                    run,
                    p.model,
                    p.test,
                    p.knobs,
                    metric_name(p.metric),
                    p.mean,
                    p.sd,
                    p.repetitions as i64
                ])?;
            }
        }
        tx.commit()?;
        Ok(Added::New {
            run,
            environment,
            new_environment,
            points: points.len(),
        })
    }

    /// The full SHA that `prefix` names among stored commits.
    pub fn resolve_commit(&self, prefix: &str) -> Result<String, HistoryError> {
        let mut stmt = self.sql(self.conn.prepare(
            "SELECT DISTINCT commit_sha FROM runs WHERE substr(commit_sha, 1, length(?1)) = ?1 ORDER BY commit_sha LIMIT 6",
        ))?;
        let found: Vec<String> = self.sql(
            stmt.query_map([prefix], |r| r.get(0))
                .and_then(|rows| rows.collect()),
        )?;
        match found.as_slice() {
            [] => Err(HistoryError::NoRunsOfCommit {
                commit: prefix.to_string(),
            }),
            [one] => Ok(one.clone()),
            _ => Err(HistoryError::AmbiguousCommit {
                prefix: prefix.to_string(),
                candidates: found,
            }),
        }
    }

    fn runs_where(
        &self,
        condition: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<RunRow>, HistoryError> {
        let sql = format!(
            "SELECT id, run_id, commit_sha, branch, commit_time, environment_id FROM runs WHERE {condition}"
        );
        let mut stmt = self.sql(self.conn.prepare(&sql))?;
        self.sql(
            stmt.query_map(args, |r| {
                Ok(RunRow {
                    id: r.get(0)?,
                    run_id: r.get(1)?,
                    commit: r.get(2)?,
                    branch: r.get(3)?,
                    commit_time: r.get(4)?,
                    environment: r.get(5)?,
                })
            })
            .and_then(|rows| rows.collect()),
        )
    }

    /// Every run of a commit (full SHA), oldest first.
    pub fn runs_of_commit(&self, commit: &str) -> Result<Vec<RunRow>, HistoryError> {
        self.runs_where("commit_sha = ?1 ORDER BY commit_time, id", &[&commit])
    }

    /// The newest `window` runs of the series (environment, branch) before
    /// `commit_time`, other commits than `commit`, newest first.
    pub fn base_runs(
        &self,
        environment: i64,
        branch: &str,
        commit: &str,
        commit_time: &str,
        window: usize,
    ) -> Result<Vec<RunRow>, HistoryError> {
        self.runs_where(
            "environment_id = ?1 AND branch = ?2 AND commit_sha != ?3 AND commit_time <= ?4
             ORDER BY commit_time DESC, id DESC LIMIT ?5",
            &[
                &environment,
                &branch,
                &commit,
                &commit_time,
                &(window as i64),
            ],
        )
    }

    /// The point means of a run.
    pub fn points_of(&self, run: i64) -> Result<Vec<PointMean>, HistoryError> {
        let mut stmt = self.sql(self.conn.prepare_cached(
            "SELECT model, test, knobs, metric, mean, sd, repetitions FROM points WHERE run = ?1",
        ))?;
        let rows: Vec<Option<PointMean>> = self.sql(
            stmt.query_map([run], point_from_row)
                .and_then(|rows| rows.collect()),
        )?;
        Ok(rows.into_iter().flatten().collect())
    }

    /// The label of an environment ("host (cpu), backend version, model").
    pub fn environment_label(&self, environment: i64) -> Result<String, HistoryError> {
        self.sql(self.conn.query_row(
            "SELECT label FROM environments WHERE id = ?1",
            [environment],
            |r| r.get(0),
        ))
    }

    /// Every series with its number of runs and commits, by environment and branch.
    pub fn series(&self) -> Result<Vec<Series>, HistoryError> {
        let mut stmt = self.sql(self.conn.prepare(
            "SELECT r.environment_id, e.label, r.branch, COUNT(*), COUNT(DISTINCT r.commit_sha),
                    MIN(r.commit_time), MAX(r.commit_time)
             FROM runs r JOIN environments e ON e.id = r.environment_id
             GROUP BY r.environment_id, r.branch ORDER BY r.environment_id, r.branch",
        ))?;
        self.sql(
            stmt.query_map([], |r| {
                Ok(Series {
                    environment: r.get(0)?,
                    environment_label: r.get(1)?,
                    branch: r.get(2)?,
                    runs: r.get::<_, i64>(3)? as usize,
                    commits: r.get::<_, i64>(4)? as usize,
                    first_time: r.get(5)?,
                    last_time: r.get(6)?,
                })
            })
            .and_then(|rows| rows.collect()),
        )
    }
}

/// A `points` row; `None` for a metric this lmtune does not know (a newer one's).
fn point_from_row(r: &rusqlite::Row) -> rusqlite::Result<Option<PointMean>> {
    let Some(metric) = parse_metric(&r.get::<_, String>(3)?) else {
        return Ok(None);
    };
    Ok(Some(PointMean {
        model: r.get(0)?,
        test: r.get(1)?,
        knobs: r.get(2)?,
        metric,
        mean: r.get(4)?,
        sd: r.get(5)?,
        repetitions: r.get::<_, i64>(6)? as usize,
    }))
}

/// Groups records by run_id, in the order the runs first appear.
pub fn runs_in(records: &[Record]) -> Vec<Vec<&Record>> {
    let mut order: Vec<String> = Vec::new();
    let mut by_run: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for r in records {
        if !by_run.contains_key(&r.run_id) {
            order.push(r.run_id.clone());
        }
        by_run.entry(r.run_id.clone()).or_default().push(r);
    }
    order
        .into_iter()
        .filter_map(|id| by_run.remove(&id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(name: &str) -> Vec<Record> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../results")
            .join(name);
        lmtune_report::load_results(&dir).unwrap().1
    }

    fn meta(commit: &str, time: &str) -> RunMeta {
        RunMeta {
            commit: commit.into(),
            branch: "main".into(),
            commit_time: time.into(),
        }
    }

    fn count(store: &Store, table: &str) -> i64 {
        store
            .conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_new_store_is_migrated_to_the_current_schema_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/history.sqlite");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), schema::SCHEMA_VERSION);
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(store);
        // Reopening applies nothing twice.
        let store = Store::open(&path).unwrap();
        assert_eq!(count(&store, "schema_version"), schema::SCHEMA_VERSION);
    }

    #[test]
    fn adding_the_same_run_twice_stores_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("h.sqlite")).unwrap();
        let records = results("2026-11-21-vm-quickstart");
        let runs = runs_in(&records);
        assert_eq!(runs.len(), 1);
        let first = store
            .add_run(&meta("aaa", "2026-11-21T21:00:00Z"), &runs[0])
            .unwrap();
        let Added::New {
            run,
            points,
            new_environment,
            ..
        } = first
        else {
            panic!("{first:?}")
        };
        assert!(new_environment);
        assert_eq!(
            points, 8,
            "pp64 and tg32 at 1 and 2 threads, n_batch 64 and 512"
        );
        // Even filed under another commit: it is the same run.
        let again = store
            .add_run(&meta("bbb", "2026-11-22T21:00:00Z"), &runs[0])
            .unwrap();
        assert_eq!(again, Added::AlreadyStored { run });
        assert_eq!(count(&store, "runs"), 1);
        assert_eq!(count(&store, "points"), 8);
    }

    #[test]
    fn runs_of_one_machine_share_a_series_across_lmtune_commits() {
        // The quickstart and its rerun were measured by different lmtune
        // commits on the same VM: one environment.
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("h.sqlite")).unwrap();
        let a = results("2026-11-21-vm-quickstart");
        let b = results("2026-11-21-vm-quickstart-rerun");
        store
            .add_run(&meta("a", "2026-11-21T21:00:00Z"), &runs_in(&a)[0])
            .unwrap();
        let added = store
            .add_run(&meta("b", "2026-11-21T22:00:00Z"), &runs_in(&b)[0])
            .unwrap();
        assert!(
            matches!(
                added,
                Added::New {
                    environment: 1,
                    new_environment: false,
                    ..
                }
            ),
            "{added:?}"
        );
        // A fake second machine (the same records, another hostname) opens a new series.
        let mut other = b.clone();
        for r in &mut other {
            r.run_id = "fake-other-host".into();
            r.fingerprint.host.hostname = "fake-other-host".into();
        }
        let added = store
            .add_run(&meta("b", "2026-11-21T22:00:00Z"), &runs_in(&other)[0])
            .unwrap();
        assert!(
            matches!(
                added,
                Added::New {
                    environment: 2,
                    new_environment: true,
                    ..
                }
            ),
            "{added:?}"
        );
        let series = store.series().unwrap();
        assert_eq!(series.len(), 2);
        assert_eq!((series[0].runs, series[1].runs), (2, 1));
    }

    #[test]
    fn a_store_from_a_newer_lmtune_is_refused_with_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sqlite");
        let store = Store::open(&path).unwrap();
        store
            .conn
            .execute("INSERT INTO schema_version (version) VALUES (99)", [])
            .unwrap();
        drop(store);
        let err = Store::open(&path).err().unwrap().to_string();
        assert!(err.contains("schema version 99"), "{err}");
    }

    #[test]
    fn short_shas_resolve_and_ambiguous_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("h.sqlite")).unwrap();
        let mut a = results("2026-11-21-vm-quickstart");
        store
            .add_run(&meta("abc111", "2026-11-21T21:00:00Z"), &runs_in(&a)[0])
            .unwrap();
        a.iter_mut().for_each(|r| r.run_id = "second".into());
        store
            .add_run(&meta("abc222", "2026-11-21T22:00:00Z"), &runs_in(&a)[0])
            .unwrap();
        assert_eq!(store.resolve_commit("abc1").unwrap(), "abc111");
        assert!(matches!(
            store.resolve_commit("abc"),
            Err(HistoryError::AmbiguousCommit { .. })
        ));
        assert!(matches!(
            store.resolve_commit("fff"),
            Err(HistoryError::NoRunsOfCommit { .. })
        ));
    }
}
