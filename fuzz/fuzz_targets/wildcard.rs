//! Fuzzes the wildcard matcher: it must never panic on any pattern and text
//! (multi-byte characters included).
#![no_main]

use iamgate::policy::wildcard::matches_str;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (String, String)| {
    let (pattern, text) = data;
    let _ = matches_str(&pattern, &text);
});
