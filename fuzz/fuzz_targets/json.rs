//! JSON bodies of the password endpoints, and the argon2 PHC strings inside
//! them: a 400 or a verdict, never a panic, and never more work than the
//! verify cost cap allows (the server's cost here is tiny, so any hash the
//! cap lets through verifies in well under a millisecond).
#![no_main]

use corepool_demo::{jobs, PasswordConfig, PasswordHashReq, PasswordVerifyReq};
use corepool_runtime::http::parse_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = parse_json::<PasswordHashReq>(data) {
        assert_eq!(e.status, 400);
    }
    match parse_json::<PasswordVerifyReq>(data) {
        Err(e) => assert_eq!(e.status, 400),
        Ok(req) => {
            let cfg = PasswordConfig { memory_kib: 8, iterations: 1, parallelism: 1, max_len: 64 };
            let _ = jobs::password_verify(&cfg, req.password.as_bytes(), &req.hash);
        }
    }
});
