//! Scenario errors: one line naming the file, line, key and the fix.

use std::fmt;
use std::path::PathBuf;

/// A scenario that cannot run, with where and how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioError {
    pub file: PathBuf,
    /// 1-based line of the offending key, when known.
    pub line: Option<usize>,
    /// The key, e.g. `sweep.n_ubatch`.
    pub key: String,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        write!(f, "{}", self.problem)?;
        if !self.fix.is_empty() {
            write!(f, " (fix: {})", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

/// Builds errors for one scenario file.
#[derive(Debug, Clone)]
pub(crate) struct ErrorSite<'a> {
    pub file: &'a std::path::Path,
    pub source: &'a str,
}

impl ErrorSite<'_> {
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.source.len());
        self.source.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub fn at(
        &self,
        span: Option<std::ops::Range<usize>>,
        key: &str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> ScenarioError {
        ScenarioError {
            file: self.file.to_path_buf(),
            line: span.map(|s| self.line_of(s.start)),
            key: key.to_string(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}
