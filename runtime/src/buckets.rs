//! Histogram bucket bounds, shared by the serving path's metrics and the
//! Redis link's (so neither metrics module imports the other).

/// `n` bucket bounds from `start`, each `factor` times the last: the bounds
/// of prometheus_client's `exponential_buckets`, bit for bit (a test checks),
/// by repeated multiplication instead of its `f64::powf`. That `powf` was the
/// one function the binary took from libm, and linking libm at all kept
/// about 450 kB of it resident in every instance (its load-time ifunc
/// relocations touch it all around); without it the linker drops libm.
pub(crate) fn exponential(start: f64, factor: f64, n: usize) -> impl Iterator<Item = f64> {
    std::iter::successors(Some(start), move |b| Some(b * factor)).take(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_prometheus_clients_exponential_ones() {
        use prometheus_client::metrics::histogram::exponential_buckets;
        for (start, factor, n) in [(0.0001, 2.5, 14), (0.00005, 2.5, 13)] {
            assert_eq!(exponential(start, factor, n).collect::<Vec<_>>(), exponential_buckets(start, factor, n as u16).collect::<Vec<_>>());
        }
    }
}
