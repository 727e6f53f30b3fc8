//! Histogram quantiles against exact sorted-sample quantiles.

use overrun::stats::Histogram;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// The nearest-rank quantile of sorted samples: the ⌈q·n⌉-th smallest.
fn exact(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

fn check(name: &str, mut samples: Vec<u64>) {
    let h = Histogram::from_values(samples.iter().copied());
    samples.sort_unstable();
    assert_eq!(h.count(), samples.len() as u64);
    assert_eq!(h.max(), *samples.last().unwrap());
    for q in [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0] {
        let want = exact(&samples, q) as f64;
        let got = h.quantile(q) as f64;
        let err = (got - want).abs() / want.max(1.0);
        assert!(
            err <= 0.02,
            "{name}: q{q} got {got} want {want} error {:.3}%",
            err * 100.0
        );
    }
}

#[test]
fn uniform() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // 10µs .. 10ms
    let samples = (0..200_000)
        .map(|_| 10_000 + (rng.unit() * 9_990_000.0) as u64)
        .collect();
    check("uniform", samples);
}

#[test]
fn log_normal() {
    let mut rng = Rng(42);
    // median ~50µs, sigma 1.5: spans many octaves
    let samples = (0..200_000)
        .map(|_| (50_000.0 * (1.5 * rng.normal()).exp()).max(1.0) as u64)
        .collect();
    check("log-normal", samples);
}

#[test]
fn bimodal() {
    let mut rng = Rng(7);
    // 90% fast (~2µs), 10% slow (~40ms): a cache hit / miss shape
    let samples = (0..200_000)
        .map(|_| {
            let (center, spread) = if rng.unit() < 0.9 {
                (2_000.0, 200.0)
            } else {
                (40_000_000.0, 5_000_000.0)
            };
            (center + spread * rng.normal()).max(1.0) as u64
        })
        .collect();
    check("bimodal", samples);
}

#[test]
fn small_values_are_exact() {
    let h = Histogram::from_values(0..64);
    assert_eq!(h.quantile(0.5), 31);
    assert_eq!(h.quantile(1.0), 63);
}
