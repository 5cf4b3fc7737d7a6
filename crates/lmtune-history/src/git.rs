//! What a run is filed under when `history add` is not told: the checkout's
//! HEAD, its branch and its commit time, from `git`.

use std::process::Command;

use crate::HistoryError;

fn git(args: &[&str]) -> Result<String, HistoryError> {
    let fail = |what: String| HistoryError::Git {
        args: args.join(" "),
        what,
    };
    let out = Command::new("git")
        .args(args)
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(fail(stderr.lines().next().unwrap_or("").trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `git rev-parse HEAD`.
pub fn head_commit() -> Result<String, HistoryError> {
    git(&["rev-parse", "HEAD"])
}

/// `git rev-parse --abbrev-ref HEAD` (`HEAD` when detached, as in most CI checkouts).
pub fn current_branch() -> Result<String, HistoryError> {
    git(&["rev-parse", "--abbrev-ref", "HEAD"])
}

/// The committer date of `commit`, normalized by [`crate::normalize_time`].
pub fn commit_time(commit: &str) -> Result<String, HistoryError> {
    let iso = git(&["show", "-s", "--format=%cI", commit])?;
    crate::normalize_time(&iso)
}

/// `git merge-base COMMIT BRANCH`.
pub fn merge_base(commit: &str, branch: &str) -> Result<String, HistoryError> {
    git(&["merge-base", commit, branch])
}
