//! Feeds arbitrary bytes to the GGUF header reader: it must return `Ok` or a
//! typed `GgufError`, never panic, hang or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lmtune_gguf::{GgufFile, Limits};

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = GgufFile::from_bytes(data, Limits::default()) {
        if let Ok(summary) = file.summary() {
            let _ = summary.type_label();
        }
    }
});
