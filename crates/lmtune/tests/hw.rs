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
