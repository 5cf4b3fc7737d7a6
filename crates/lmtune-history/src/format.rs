//! `history check` output: the `compare` exporters per series under a
//! heading naming the series, or one JSON document.

use std::fmt::Write as _;
use std::io;

use lmtune_report::CompareFormat;

use crate::gate::HistoryCheck;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckFormat {
    Table,
    Markdown,
    Json,
    /// JUnit XML: one test suite per series.
    Junit,
}

impl CheckFormat {
    pub const ALL: [CheckFormat; 4] = [
        CheckFormat::Table,
        CheckFormat::Markdown,
        CheckFormat::Json,
        CheckFormat::Junit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CheckFormat::Table => "table",
            CheckFormat::Markdown => "md",
            CheckFormat::Json => "json",
            CheckFormat::Junit => "junit",
        }
    }

    pub fn parse(name: &str) -> Option<CheckFormat> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn render(self, check: &HistoryCheck) -> io::Result<Vec<u8>> {
        let (compare, heading): (CompareFormat, fn(&mut String, &str)) = match self {
            CheckFormat::Json => {
                let mut out = serde_json::to_vec_pretty(check)?;
                out.push(b'\n');
                return Ok(out);
            }
            CheckFormat::Junit => return junit(check),
            CheckFormat::Table => (CompareFormat::Table, |o, h| {
                let _ = writeln!(o, "== {h}");
            }),
            CheckFormat::Markdown => (CompareFormat::Markdown, |o, h| {
                let _ = writeln!(o, "### {h}\n");
            }),
        };
        let mut out = Vec::new();
        for s in &check.series {
            let mut head = String::new();
            heading(
                &mut head,
                &format!(
                    "commit {} on {} — {} (run(s): {} of this commit, {} earlier)",
                    short(&check.commit),
                    s.branch,
                    s.environment_label,
                    s.current_runs,
                    s.base_runs
                ),
            );
            if self == CheckFormat::Markdown {
                // The Markdown exporter of `compare` has no notes; here they
                // carry the base's size and the too-few-runs warning, above
                // its verdict line so that a PR comment cannot read as a pass.
                for n in &s.comparison.notes {
                    let _ = writeln!(head, "> {n}\n");
                }
            }
            out.extend_from_slice(head.as_bytes());
            out.extend(compare.exporter().serialize(&s.comparison)?);
            out.push(b'\n');
        }
        Ok(out)
    }
}

/// The `compare` JUnit suite of each series, renamed after the series,
/// with the notes (the base, too few runs, a change point here) as its
/// system-out, in one `<testsuites>` document.
fn junit(check: &HistoryCheck) -> io::Result<Vec<u8>> {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for s in &check.series {
        let xml =
            String::from_utf8_lossy(&CompareFormat::Junit.exporter().serialize(&s.comparison)?)
                .into_owned();
        let name = esc(&format!(
            "lmtune history check {} on {} — {}",
            short(&check.commit),
            s.branch,
            s.environment_label
        ));
        let notes = s
            .comparison
            .notes
            .iter()
            .map(|n| esc(n))
            .collect::<Vec<_>>()
            .join("\n");
        for line in xml.lines().filter(|l| !l.starts_with("<?xml")) {
            if line.starts_with("</testsuite>") {
                let _ = writeln!(out, "  <system-out>{notes}</system-out>");
            }
            let line = line.replacen("name=\"lmtune compare\"", &format!("name=\"{name}\""), 1);
            let _ = writeln!(out, "{line}");
        }
    }
    out.push_str("</testsuites>\n");
    Ok(out.into_bytes())
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}
