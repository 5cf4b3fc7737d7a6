//! `lmtune hw` on this machine.

mod common;

use common::lmtune;

#[test]
fn hw_prints_the_fingerprint_and_gpus_or_their_absence() {
    let out = lmtune().arg("hw").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for label in ["cpu:", "ram:", "os:", "lmtune:"] {
        assert!(text.contains(label), "{text}");
    }
    // Either a GPU line with its VRAM, or the reason there is none.
    assert!(
        text.contains("no NVIDIA GPU detected")
            || (text.contains("gpu 0:") && text.contains("free of")),
        "{text}"
    );
}

#[test]
fn hw_json_is_machine_readable() {
    let out = lmtune().args(["hw", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["host"]["logical_cores"].as_u64().unwrap() >= 1);
    assert!(v["gpus"].is_array());
    if v["gpus"].as_array().unwrap().is_empty() {
        assert!(v["gpu_note"]
            .as_str()
            .unwrap()
            .starts_with("no NVIDIA GPU detected"));
    }
}

/// Issue 22 #20: `--version` names the git commit the binary was built from,
/// and `completions` prints a script for the shell asked.
#[test]
fn version_names_the_commit_and_completions_print_a_script() {
    let out = lmtune().arg("--version").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("lmtune 0."), "{text}");
    assert!(
        text.contains(" (") && text.trim_end().ends_with(')'),
        "{text}"
    );
    for (shell, marker) in [
        ("bash", "_lmtune()"),
        ("zsh", "#compdef lmtune"),
        ("fish", "complete -c lmtune"),
    ] {
        let out = lmtune().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains(marker),
            "{shell}: {}",
            &script[..script.len().min(200)]
        );
    }
    let out = lmtune().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
