//! Terminal output of a run: a progress bar with ETA on a terminal, one line
//! per finished point otherwise (CI logs), and the results directory name.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lmtune_core::knobs::knob_label;
use lmtune_core::record::{Record, Status};

/// `results/<date>-<host>-<scenario>/`, with `-2`, `-3`, … when taken.
pub fn default_out_dir(root: &Path, host: &str, scenario: &str) -> PathBuf {
    let date = chrono::Local::now().format("%Y-%m-%d");
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    let base = format!("{date}-{}-{}", clean(host), clean(scenario));
    let mut dir = root.join(&base);
    let mut n = 2;
    while dir.exists() {
        dir = root.join(format!("{base}-{n}"));
        n += 1;
    }
    dir
}

/// Progress of a sweep on stderr.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
    /// No terminal: print a line per point instead of drawing a bar.
    plain: bool,
    total: u64,
}

impl Progress {
    pub fn new(total: u64) -> Progress {
        let plain = !std::io::stderr().is_terminal();
        let bar = if plain {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden())
        } else {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} points, ETA {eta}  {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        };
        Progress { bar, plain, total }
    }

    /// A line above the bar (or plain on stderr).
    pub fn note(&self, line: &str) {
        if self.plain {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    pub fn set_message(&self, msg: &str) {
        self.bar.set_message(msg.to_string());
    }

    pub fn set_rep(&self, rep: u32, of: u32) {
        let msg = self.bar.message();
        let base = msg.split(" [rep").next().unwrap_or("").to_string();
        self.bar.set_message(format!("{base} [rep {rep}/{of}]"));
    }

    pub fn point_done(&self, r: &Record) {
        self.bar.inc(1);
        if self.plain {
            let result = match (&r.status, &r.tokens_per_s) {
                (Status::Ok, Some(s)) => format!("{:.2} ± {:.2} t/s", s.mean, s.sd),
                (status, _) => status.as_str().to_string(),
            };
            eprintln!(
                "[{}/{}] {} {}: {result}",
                r.point_index + 1,
                self.total,
                r.test,
                knob_label(&r.load, &r.ctx, true)
            );
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_dir_is_unique_and_clean() {
        let root = std::env::temp_dir().join(format!("lmtune-out-{}", std::process::id()));
        let first = default_out_dir(&root, "my host", "a/b");
        assert!(first
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with("-my-host-a-b"));
        std::fs::create_dir_all(&first).unwrap();
        let second = default_out_dir(&root, "my host", "a/b");
        assert!(second.to_string_lossy().ends_with("-2"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
