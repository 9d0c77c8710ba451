//! The heavy work run on the pool. Plain functions of their inputs and a
//! [`Cancel`] token; nothing here knows about HTTP.

use std::hint::black_box;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use sha2::Digest;

use corepool::pool::Cancel;

use crate::PasswordConfig;

/// How often (in iterations) the compute loop looks at its cancel flag.
const CANCEL_CHECK_EVERY: u64 = 1 << 20;

/// The seed's benchmark loop: the sum of `0..n`, computed one addition at a
/// time (`black_box` keeps the compiler from using the closed form).
/// Returns `None` if cancelled before finishing.
pub fn compute(n: u64, cancel: &Cancel) -> Option<u64> {
    let mut sum: u64 = 0;
    let mut i: u64 = 0;
    while i < n {
        let end = n.min(i + CANCEL_CHECK_EVERY);
        while i < end {
            sum = sum.wrapping_add(black_box(i));
            i += 1;
        }
        if i < n && cancel.is_cancelled() {
            return None;
        }
    }
    Some(sum)
}

/// Hash algorithms offered by `POST /v1/hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Blake3,
}

impl std::str::FromStr for HashAlg {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "sha256" => Ok(HashAlg::Sha256),
            "blake3" => Ok(HashAlg::Blake3),
            _ => Err(()),
        }
    }
}

impl HashAlg {
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Blake3 => "blake3",
        }
    }
}

/// Hex digest of the body chunks, fed in order.
pub fn hash<'a>(alg: HashAlg, chunks: impl IntoIterator<Item = &'a [u8]>) -> String {
    match alg {
        HashAlg::Sha256 => {
            let mut h = sha2::Sha256::new();
            chunks.into_iter().for_each(|c| h.update(c));
            hex::encode(h.finalize())
        }
        HashAlg::Blake3 => {
            let mut h = blake3::Hasher::new();
            chunks.into_iter().for_each(|c| {
                h.update(c);
            });
            h.finalize().to_hex().to_string()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("`hash` is not an argon2 PHC string: {0}")]
    BadHash(String),
    #[error("`hash` asks for more work than allowed: {0}")]
    TooCostly(String),
    #[error("argon2 failed: {0}")]
    Internal(String),
}

fn argon2(cfg: &PasswordConfig) -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None).map_err(|e| PasswordError::Internal(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// argon2id PHC string of `password` with a fresh random salt.
pub fn password_hash(cfg: &PasswordConfig, password: &[u8]) -> Result<String, PasswordError> {
    argon2(cfg)?.hash_password(password).map(|h| h.to_string()).map_err(|e| PasswordError::Internal(e.to_string()))
}

/// How much more than this server's own hashing cost a hash presented for
/// verification may ask for. A PHC string carries its own cost parameters, so
/// without a cap one request could demand gigabytes and minutes of CPU.
pub const VERIFY_COST_FACTOR: u32 = 4;

/// Checks `password` against a PHC string, with the string's own parameters
/// as long as each is at most [`VERIFY_COST_FACTOR`] times the configured one.
pub fn password_verify(cfg: &PasswordConfig, password: &[u8], phc: &str) -> Result<bool, PasswordError> {
    let parsed = argon2::password_hash::phc::PasswordHash::new(phc).map_err(|e| PasswordError::BadHash(e.to_string()))?;
    let params = Params::try_from(&parsed).map_err(|e| PasswordError::BadHash(e.to_string()))?;
    let f = VERIFY_COST_FACTOR;
    for (name, asked, ours) in [
        ("m (memory KiB)", params.m_cost(), cfg.memory_kib),
        ("t (iterations)", params.t_cost(), cfg.iterations),
        ("p (parallelism)", params.p_cost(), cfg.parallelism),
    ] {
        if asked > ours.saturating_mul(f) {
            return Err(PasswordError::TooCostly(format!("{name}={asked} exceeds {f}x this server's {ours}")));
        }
    }
    match Argon2::default().verify_password(password, &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(PasswordError::BadHash(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_sums() {
        let c = Cancel::never();
        assert_eq!(compute(0, &c), Some(0));
        assert_eq!(compute(10, &c), Some(45));
        assert_eq!(compute(3_000_000, &c), Some(3_000_000 * 2_999_999 / 2));
    }

    #[test]
    fn hashes_match_known_vectors() {
        assert_eq!(hash(HashAlg::Sha256, [b"ab".as_slice(), b"c"]), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hash(HashAlg::Blake3, [b"abc".as_slice()]), "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
    }

    #[test]
    fn password_roundtrip() {
        let cfg = PasswordConfig { memory_kib: 64, iterations: 1, parallelism: 1, max_len: 64 };
        let h = password_hash(&cfg, b"hunter2").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(password_verify(&cfg, b"hunter2", &h).unwrap());
        assert!(!password_verify(&cfg, b"hunter3", &h).unwrap());
        assert!(matches!(password_verify(&cfg, b"x", "not a hash"), Err(PasswordError::BadHash(_))));
    }

    #[test]
    fn verify_refuses_hashes_that_ask_for_too_much_work() {
        let cfg = PasswordConfig { memory_kib: 64, iterations: 1, parallelism: 1, max_len: 64 };
        let h = password_hash(&cfg, b"hunter2").unwrap();
        let salt_and_hash = h.rsplitn(3, '$').take(2).collect::<Vec<_>>();
        let with = |params: &str| format!("$argon2id$v=19${params}${}${}", salt_and_hash[1], salt_and_hash[0]);
        // Up to 4x our cost is fine (a weaker or older hash still verifies)...
        assert!(!password_verify(&cfg, b"x", &with("m=256,t=4,p=4")).unwrap());
        // ...beyond it, refused before any work is done: 4 GiB, 10^6 passes, 255 lanes.
        for p in ["m=4194304,t=1,p=1", "m=64,t=1000000,p=1", "m=2048,t=1,p=255"] {
            let e = password_verify(&cfg, b"x", &with(p)).unwrap_err();
            assert!(matches!(e, PasswordError::TooCostly(_)), "{p}: {e}");
        }
    }
}
