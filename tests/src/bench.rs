//! What every benchmark binary shares: its runtime and its choice of backends.

use crate::db::Kind;

/// A two-thread runtime, like the machine the benchmarks are read on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio")
}

/// The backends to measure, with their names: both, or those named in
/// `CORRAL_BENCH_BACKENDS` (`postgres`, `sqlite`).
pub fn backends() -> Vec<(Kind, &'static str)> {
    let only = std::env::var("CORRAL_BENCH_BACKENDS").unwrap_or_default();
    [(Kind::Postgres, "postgres"), (Kind::Sqlite, "sqlite")]
        .into_iter()
        .filter(|(_, name)| only.is_empty() || only.contains(name))
        .collect()
}

/// The median of some measurements.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
