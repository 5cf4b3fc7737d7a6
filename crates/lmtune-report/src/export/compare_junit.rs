//! The regression gate's verdicts as JUnit XML for CI test reports.

use std::fmt::Write as _;
use std::io;

use crate::compare::Comparison;
use lmtune_core::compare::Verdict;

use super::compare_table::pct;
use super::{text, Exporter};

pub struct CompareJunit;

impl Exporter<Comparison> for CompareJunit {
    fn body(&self, c: &Comparison) -> io::Result<Vec<u8>> {
        text(render_junit(c))
    }
}

/// JUnit XML: one test case per point and metric; `Regressed` is a failure,
/// `Inconclusive` is reported as skipped.
fn render_junit(c: &Comparison) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut out = String::new();
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        out,
        r#"<testsuite name="lmtune compare" tests="{}" failures="{}" skipped="{}">"#,
        c.rows.len(),
        c.count(Verdict::Regressed),
        c.count(Verdict::Inconclusive)
    );
    for r in &c.rows {
        let name = esc(&format!("{} {} {}", r.model, r.test, r.knobs));
        let _ = write!(
            out,
            r#"  <testcase classname="lmtune.{:?}" name="{name}""#,
            r.metric
        );
        match r.change.verdict {
            Verdict::Regressed => {
                let _ = writeln!(
                    out,
                    ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>",
                    esc(&format!(
                        "Regressed {}",
                        pct(Some(r.change.relative_change))
                    )),
                    esc(&r.change.reason)
                );
            }
            Verdict::Inconclusive => {
                let _ = writeln!(
                    out,
                    ">\n    <skipped message=\"{}\"/>\n  </testcase>",
                    esc(&r.change.reason)
                );
            }
            _ => {
                let _ = writeln!(out, "/>");
            }
        }
    }
    let _ = writeln!(out, "</testsuite>");
    out
}
