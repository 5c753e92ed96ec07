//! Policy test files (format v1, `POLICY-TESTS.md`): reading them strictly
//! (unknown fields are errors, located by JSON path), compiling their
//! policies, running their tests, and timing them for `iamgate bench`.
//!
//! This module reads files and prints nothing: the binary decides how
//! results are shown.

pub mod bench;
pub mod format;
pub mod runner;

pub use format::{CompiledCase, CompiledFile, TestFileError, load_file, parse_test_file};
pub use runner::{CaseResult, FileReport, run_file};
