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
}

impl CheckFormat {
    pub const ALL: [CheckFormat; 3] =
        [CheckFormat::Table, CheckFormat::Markdown, CheckFormat::Json];

    pub fn name(self) -> &'static str {
        match self {
            CheckFormat::Table => "table",
            CheckFormat::Markdown => "md",
            CheckFormat::Json => "json",
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

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}
