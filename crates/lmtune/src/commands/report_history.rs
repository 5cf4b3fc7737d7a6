//! `lmtune report --history DB -o DIR`: a trend chart per point and metric
//! of a history store — t/s per commit, a whisker over the commit's runs,
//! each change point's levels drawn dashed — with `index.html` and a
//! Markdown `summary.md` for a pull-request comment.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context};
use lmtune_history::{ChangesParams, Store, Trend, DEFAULT_LAST_COMMITS};
use lmtune_report::compare::Metric;
use lmtune_report::report::chart::{Series, XyPoint};
use lmtune_report::report::{html_escape, Chart};

use crate::cli::ReportArgs;
use crate::exit;

pub fn run(db: &Path, args: &ReportArgs) -> anyhow::Result<u8> {
    if args.output.exists() {
        bail!(
            "-o {}: it already exists; choose a new directory",
            args.output.display()
        );
    }
    let store = Store::open_existing(db)?;
    let trends = lmtune_history::trends(
        &store,
        &ChangesParams {
            branch: args.branch.clone(),
            metrics: vec![Metric::Tg, Metric::Pp],
            last: DEFAULT_LAST_COMMITS,
            edivisive: Default::default(),
        },
    )?;
    if trends.is_empty() {
        bail!(
            "{}: the store holds no runs{}; add some with `lmtune history add RESULTS`",
            db.display(),
            args.branch
                .as_deref()
                .map(|b| format!(" of branch {b}"))
                .unwrap_or_default()
        );
    }
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let charts: Vec<Chart> = trends
        .iter()
        .enumerate()
        .map(|(i, t)| chart(i, t))
        .collect();
    for c in &charts {
        let svg = c.to_svg()?;
        std::fs::write(args.output.join(format!("{}.svg", c.stem())), svg)?;
        if !args.no_png {
            c.to_png(&args.output.join(format!("{}.png", c.stem())))?;
        }
    }
    let title = args
        .title
        .clone()
        .unwrap_or_else(|| format!("Performance history: {}", db.display()));
    std::fs::write(
        args.output.join("index.html"),
        index_html(&title, &trends, &charts),
    )?;
    std::fs::write(
        args.output.join("summary.md"),
        summary_md(&title, &trends, &charts),
    )?;
    println!(
        "{} trend chart(s), {} change point(s): {}",
        charts.len(),
        trends.iter().map(|t| t.steps.len()).sum::<usize>(),
        args.output.join("index.html").display()
    );
    Ok(exit::OK)
}

fn point_title(t: &Trend) -> String {
    format!(
        "{} {} {} ({}, {})",
        t.key.1, t.key.0, t.key.2, t.environment_label, t.branch
    )
}

/// t/s per commit (x: the commit's position, oldest first), a whisker from
/// the slowest to the fastest run, and each change point's segment levels.
fn chart(i: usize, t: &Trend) -> Chart {
    let points: Vec<XyPoint> = t
        .commits
        .iter()
        .enumerate()
        .map(|(x, c)| {
            let n = c.runs.len().max(1) as f64;
            XyPoint {
                x: x as f64,
                y: c.runs.iter().sum::<f64>() / n,
                lo: c.runs.iter().copied().fold(f64::INFINITY, f64::min),
                hi: c.runs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            }
        })
        .collect();
    let mut series = vec![Series {
        label: "t/s (whisker: slowest to fastest run)".into(),
        points,
        predicted: false,
    }];
    let at = |commit: &str| t.commits.iter().position(|c| c.commit == commit);
    for s in &t.steps {
        let (Some(prev), Some(step)) = (at(&s.previous_commit), at(&s.commit)) else {
            continue;
        };
        let level = |from: usize, to: usize, y: f64| -> Vec<XyPoint> {
            (from..=to)
                .map(|x| XyPoint {
                    x: x as f64,
                    y,
                    lo: y,
                    hi: y,
                })
                .collect()
        };
        let start = prev + 1 - s.commits_before.min(prev + 1);
        let end = (step + s.commits_after)
            .saturating_sub(1)
            .min(t.commits.len() - 1);
        series.push(Series {
            label: format!(
                "change at {} ({:+.1}%, p = {:.3}): level before",
                short(&s.commit),
                s.change * 100.0,
                s.p_value
            ),
            points: level(start, prev, s.before_mean),
            predicted: true,
        });
        series.push(Series {
            label: format!("level from {}", short(&s.commit)),
            points: level(step, end, s.after_mean),
            predicted: true,
        });
    }
    Chart::Lines {
        stem: format!("history_{i:03}"),
        // The model and environment are in the page's caption: a chart's
        // title is only as wide as the chart.
        title: format!("{} {}", t.key.1, t.key.2),
        x_label: format!(
            "commit of branch {} ({} … {}, oldest first)",
            t.branch,
            short(&t.commits[0].commit),
            short(&t.commits[t.commits.len() - 1].commit)
        ),
        y_label: "tokens/s".into(),
        log2_x: false,
        series,
        failed: Vec::new(),
        hline: None,
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

fn steps_table(trends: &[Trend]) -> String {
    let mut md = String::from("| point | change at | before | after | change | p |\n| --- | --- | --- | --- | --- | --- |\n");
    let mut any = false;
    for t in trends {
        for s in &t.steps {
            any = true;
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} | {:.2} | {:+.1}% | {:.3} |",
                point_title(t),
                short(&s.commit),
                s.before_mean,
                s.after_mean,
                s.change * 100.0,
                s.p_value
            );
        }
    }
    if any {
        md
    } else {
        "No change point (E-Divisive means, p ≤ 0.02, at least 3 commits on each side).\n".into()
    }
}

fn summary_md(title: &str, trends: &[Trend], charts: &[Chart]) -> String {
    let mut md = format!(
        "# {title}\n\n## Change points\n\n{}\n## Trends\n\n",
        steps_table(trends)
    );
    for (c, t) in charts.iter().zip(trends) {
        let _ = writeln!(md, "- [{}]({}.svg)", point_title(t), c.stem());
    }
    md
}

fn index_html(title: &str, trends: &[Trend], charts: &[Chart]) -> String {
    let esc = html_escape;
    let mut rows = String::new();
    for t in trends {
        for s in &t.steps {
            let _ = write!(
                rows,
                "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:+.1}%</td><td>{:.3}</td></tr>",
                esc(&point_title(t)),
                esc(short(&s.commit)),
                s.before_mean,
                s.after_mean,
                s.change * 100.0,
                s.p_value
            );
        }
    }
    let table = if rows.is_empty() {
        "<p>No change point (E-Divisive means, p ≤ 0.02, at least 3 commits on each side).</p>"
            .to_string()
    } else {
        format!("<table><tr><th>point</th><th>change at</th><th>before</th><th>after</th><th>change</th><th>p</th></tr>{rows}</table>")
    };
    let mut imgs = String::new();
    for (c, t) in charts.iter().zip(trends) {
        let _ = write!(
            imgs,
            "<figure><img src=\"{0}.svg\" alt=\"{1}\"><figcaption>{1}</figcaption></figure>",
            c.stem(),
            esc(&point_title(t))
        );
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}img{{max-width:100%}}</style></head><body><h1>{t}</h1><h2>Change points</h2>{table}<h2>Trends</h2>{imgs}</body></html>\n",
        t = esc(title)
    )
}
