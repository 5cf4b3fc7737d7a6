//! The paste forms live in `lmtune_report::paste` (the report prints them
//! too); `plan` and `tune` reach them here.

pub use lmtune_report::paste::{lines, Settings};
