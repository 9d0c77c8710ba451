//! The one check every name given on the command line passes before it
//! reaches certbot, nginx's `server_name` or the resolver.

/// A DNS name: dot-separated labels of letters, digits and `-` (not first),
/// 1..=63 bytes each, at most 253 in all.
pub fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        for ok in ["app.test", "a-1.example.com", "app1", "x".repeat(63).as_str()] {
            assert!(is_dns_name(ok), "{ok}");
        }
        for bad in ["", "-x", "a..b", "a b", "a_b.test", "ä.test", "x".repeat(64).as_str(), "a;b"] {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }
}
