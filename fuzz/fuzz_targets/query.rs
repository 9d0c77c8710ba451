//! Query strings: parameter lookup and the unsigned-integer check behind
//! `/compute?n=`: a value within bounds, or a 400, never a panic.
#![no_main]

use corepool_runtime::http::{parse_u64_param, query_value};
use libfuzzer_sys::fuzz_target;

const MAX: u64 = 10_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let raw = query_value(Some(query), "n");
    if let Some(v) = raw {
        assert!(query.contains(v));
    }
    match parse_u64_param("n", raw, MAX) {
        Ok(n) => assert!(n <= MAX),
        Err(e) => assert_eq!(e.status, 400, "{e}"),
    }
});
