//! llama.cpp / ggml log capture.
//!
//! Warnings and errors are always written to stderr (so a crash leaves its
//! reason in the tail the runner keeps) and collected, so the point they
//! happened in can carry them. Informational chatter passes through only in
//! verbose mode, except the lines that say where the model and its buffers
//! went ([`take_placement`]), which are kept. llama.cpp logs in fragments (`GGML_LOG_LEVEL_CONT` continues
//! the previous line), so text is buffered up to each newline.

use std::ffi::{c_char, c_void, CStr};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use llama_cpp_sys_2::{
    ggml_log_level, GGML_LOG_LEVEL_CONT, GGML_LOG_LEVEL_ERROR, GGML_LOG_LEVEL_WARN,
};

static VERBOSE: AtomicBool = AtomicBool::new(false);
/// Set while llama.cpp works for a dry run: its lines are still collected
/// (the dry run reads its errors) but not echoed, so a verbose log shows the
/// model and contexts that are measured, as llama-bench's does.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Runs `f` with llama.cpp's log kept off stderr.
pub fn quietly<T>(f: impl FnOnce() -> T) -> T {
    QUIET.store(true, Ordering::Relaxed);
    let out = f();
    QUIET.store(false, Ordering::Relaxed);
    out
}

struct State {
    /// Level of the line being assembled.
    level: ggml_log_level,
    partial: String,
    /// Warning/error lines not yet taken by [`take`].
    captured: Vec<String>,
    /// Placement lines not yet taken by [`take_placement`].
    placement: Vec<String>,
}

static STATE: Mutex<State> = Mutex::new(State {
    level: 0,
    partial: String::new(),
    captured: Vec::new(),
    placement: Vec::new(),
});

/// At most this many lines are kept between two [`take`] calls.
const MAX_CAPTURED: usize = 200;

/// Routes llama.cpp's and ggml's logs through [`callback`].
pub fn install(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
    // SAFETY: the callback is a plain function valid for the process lifetime.
    unsafe { llama_cpp_sys_2::llama_log_set(Some(callback), std::ptr::null_mut()) };
}

/// Takes the warning and error lines logged since the last call.
pub fn take() -> Vec<String> {
    let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
    std::mem::take(&mut state.captured)
}

/// Takes the placement lines (offload counts, buffer sizes) logged since the
/// last call.
pub fn take_placement() -> Vec<String> {
    let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
    std::mem::take(&mut state.placement)
}

fn is_important(level: ggml_log_level) -> bool {
    level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR
}

unsafe extern "C" fn callback(level: ggml_log_level, text: *const c_char, _user: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string valid for this call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
    if level != GGML_LOG_LEVEL_CONT {
        state.level = level;
    }
    let level = state.level;
    state.partial.push_str(&text);
    while let Some(pos) = state.partial.find('\n') {
        let line: String = state.partial.drain(..=pos).collect();
        let line = line.trim_end().to_string();
        if line.is_empty() {
            continue;
        }
        let important = is_important(level);
        if (important || VERBOSE.load(Ordering::Relaxed)) && !QUIET.load(Ordering::Relaxed) {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
        let kept =
            super::placement::is_placement_line(&line) || super::applied::is_applied_line(&line);
        if kept && state.placement.len() < MAX_CAPTURED {
            state.placement.push(line.clone());
        }
        if important && state.captured.len() < MAX_CAPTURED {
            state.captured.push(line);
        }
    }
}
