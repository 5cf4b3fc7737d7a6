//! `history export`: the store's point means out as CSV or JSON lines (one
//! row per run, point and metric), or one commit as Bencher Metric Format
//! (`{benchmark: {measure: {value, lower_value, upper_value}}}`,
//! <https://bencher.dev/docs/reference/bencher-metric-format/>).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::points::metric_name;
use crate::store::Store;
use crate::HistoryError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Jsonl,
    Bencher,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 3] = [
        ExportFormat::Csv,
        ExportFormat::Jsonl,
        ExportFormat::Bencher,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Bencher => "bencher",
        }
    }

    pub fn parse(name: &str) -> Option<ExportFormat> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Which runs to export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportFilter {
    pub branch: Option<String>,
    /// A full SHA (resolve a prefix with [`Store::resolve_commit`]).
    pub commit: Option<String>,
    pub environment: Option<i64>,
}

/// One run's mean of one point and metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportRow {
    pub commit: String,
    pub branch: String,
    pub commit_time: String,
    pub environment: i64,
    pub run_id: String,
    pub model: String,
    pub test: String,
    pub knobs: String,
    pub metric: &'static str,
    pub mean: f64,
    pub sd: Option<f64>,
    pub repetitions: usize,
}

/// The rows that `filter` selects, by commit time, run, point and metric.
pub fn export_rows(store: &Store, filter: &ExportFilter) -> Result<Vec<ExportRow>, HistoryError> {
    let mut stmt = store.sql(store.conn.prepare(
        "SELECT r.commit_sha, r.branch, r.commit_time, r.environment_id, r.run_id,
                p.model, p.test, p.knobs, p.metric, p.mean, p.sd, p.repetitions
         FROM runs r JOIN points p ON p.run = r.id
         WHERE (?1 IS NULL OR r.branch = ?1) AND (?2 IS NULL OR r.commit_sha = ?2)
           AND (?3 IS NULL OR r.environment_id = ?3)
         ORDER BY r.commit_time, r.id, p.model, p.test, p.knobs, p.metric",
    ))?;
    let rows: Vec<Option<ExportRow>> = store.sql(
        stmt.query_map(
            rusqlite::params![filter.branch, filter.commit, filter.environment],
            |r| {
                // A metric this lmtune does not know (a newer one's) is skipped.
                let Some(metric) = crate::points::parse_metric(&r.get::<_, String>(8)?) else {
                    return Ok(None);
                };
                Ok(Some(ExportRow {
                    commit: r.get(0)?,
                    branch: r.get(1)?,
                    commit_time: r.get(2)?,
                    environment: r.get(3)?,
                    run_id: r.get(4)?,
                    model: r.get(5)?,
                    test: r.get(6)?,
                    knobs: r.get(7)?,
                    metric: metric_name(metric),
                    mean: r.get(9)?,
                    sd: r.get(10)?,
                    repetitions: r.get::<_, i64>(11)? as usize,
                }))
            },
        )
        .and_then(|rows| rows.collect()),
    )?;
    Ok(rows.into_iter().flatten().collect())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV with a header; an absent sd is an empty field.
pub fn to_csv(rows: &[ExportRow]) -> String {
    let mut out = String::from(
        "commit,branch,commit_time,environment,run_id,model,test,knobs,metric,mean,sd,repetitions\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&r.commit),
            csv_field(&r.branch),
            r.commit_time,
            r.environment,
            csv_field(&r.run_id),
            csv_field(&r.model),
            csv_field(&r.test),
            csv_field(&r.knobs),
            r.metric,
            r.mean,
            r.sd.map(|s| s.to_string()).unwrap_or_default(),
            r.repetitions
        );
    }
    out
}

/// One JSON object a line.
pub fn to_jsonl(rows: &[ExportRow]) -> String {
    rows.iter()
        .map(|r| serde_json::to_string(r).unwrap_or_default() + "\n")
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct BencherMetric {
    value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    lower_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upper_value: Option<f64>,
}

/// Bencher Metric Format of the rows of one commit in one environment:
/// the benchmark is "model test knobs", the measure `tg_tokens_per_s` or
/// `pp_tokens_per_s`; the value is the mean over the commit's runs, the
/// bounds the lowest and highest run means (one run: its mean ± the sd of
/// its repetitions, when known).
pub fn to_bencher(rows: &[ExportRow]) -> Result<String, HistoryError> {
    let mut commits: Vec<&str> = rows.iter().map(|r| r.commit.as_str()).collect();
    commits.dedup();
    let mut environments: Vec<i64> = rows.iter().map(|r| r.environment).collect();
    environments.sort();
    environments.dedup();
    if commits.len() > 1 || environments.len() > 1 {
        return Err(HistoryError::BencherScope {
            commits: commits.len(),
            environments: environments.len(),
        });
    }
    let mut runs: BTreeMap<(String, String), Vec<&ExportRow>> = BTreeMap::new();
    for r in rows {
        let name = format!("{} {} {}", r.model, r.test, r.knobs);
        let measure = format!("{}_tokens_per_s", r.metric);
        runs.entry((name, measure)).or_default().push(r);
    }
    let mut doc: BTreeMap<String, BTreeMap<String, BencherMetric>> = BTreeMap::new();
    for ((name, measure), of_point) in runs {
        let means: Vec<f64> = of_point.iter().map(|r| r.mean).collect();
        let value = means.iter().sum::<f64>() / means.len() as f64;
        let (lower_value, upper_value) = match (means.len(), of_point[0].sd) {
            (1, Some(sd)) => (Some(value - sd), Some(value + sd)),
            (1, None) => (None, None),
            _ => (
                means.iter().copied().reduce(f64::min),
                means.iter().copied().reduce(f64::max),
            ),
        };
        doc.entry(name).or_default().insert(
            measure,
            BencherMetric {
                value,
                lower_value,
                upper_value,
            },
        );
    }
    Ok(serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n")
}

/// The export of `filter`'s runs in `format`.
pub fn export(
    store: &Store,
    filter: &ExportFilter,
    format: ExportFormat,
) -> Result<String, HistoryError> {
    let rows = export_rows(store, filter)?;
    match format {
        ExportFormat::Csv => Ok(to_csv(&rows)),
        ExportFormat::Jsonl => Ok(to_jsonl(&rows)),
        ExportFormat::Bencher => {
            // Without --commit: the newest commit selected.
            let newest = rows.last().map(|r| r.commit.clone());
            let rows: Vec<ExportRow> = rows
                .into_iter()
                .filter(|r| filter.commit.is_some() || Some(&r.commit) == newest.as_ref())
                .collect();
            to_bencher(&rows)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_commas_or_quotes_are_quoted() {
        assert_eq!(csv_field("t=1 n_batch=512"), "t=1 n_batch=512");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
