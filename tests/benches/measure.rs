//! What the benchmarks share: concurrent callers for a duration with their latencies
//! ([`measure`], [`Sample`]), and a single-threaded operation counted for a duration
//! ([`measure_ops`], [`Rate`]).
//!
//! Included by each benchmark with `mod measure;`.

use std::future::Future;
use std::time::{Duration, Instant};

/// The latencies of the calls of one or more phases, and the time they took.
#[derive(Default)]
pub struct Sample {
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

impl Sample {
    pub fn merge(&mut self, other: Sample) {
        self.latencies.extend(other.latencies);
        self.elapsed += other.elapsed;
    }

    /// Calls per second.
    pub fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile_ms(&mut self, p: f64) -> f64 {
        self.latencies.sort_unstable();
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index].as_secs_f64() * 1000.0
    }
}

/// Runs `call` from `callers` tasks for `duration`; every call must succeed.
pub async fn measure<F, Fut>(callers: usize, duration: Duration, call: F) -> Sample
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    measure_each(callers, duration, move |_| call()).await
}

/// As [`measure`], with the caller's index (`0..callers`) passed to each call, so that each
/// caller can work on a row of its own.
pub async fn measure_each<F, Fut>(callers: usize, duration: Duration, call: F) -> Sample
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..callers)
        .map(|caller| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    assert!(call(caller).await, "every call of the benchmark succeeds");
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut sample = Sample::default();
    for worker in workers {
        sample.latencies.extend(worker.await.expect("worker"));
    }
    sample.elapsed = started.elapsed();
    sample
}

/// How many times an operation ran in how long, on one thread.
#[derive(Default, Clone, Copy)]
pub struct Rate {
    pub ops: u64,
    pub elapsed: Duration,
}

impl Rate {
    pub fn merge(&mut self, other: Rate) {
        self.ops += other.ops;
        self.elapsed += other.elapsed;
    }

    /// Operations per second.
    pub fn per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// Mean time of one operation, in microseconds.
    pub fn micros_per_op(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / self.ops as f64
    }
}

/// Runs `op` on the calling thread for `duration`, in batches so that reading the clock does not
/// weigh on operations of a microsecond or less.
pub fn measure_ops(duration: Duration, mut op: impl FnMut()) -> Rate {
    const BATCH: u64 = 64;
    let started = Instant::now();
    let mut ops = 0;
    while started.elapsed() < duration {
        for _ in 0..BATCH {
            op();
        }
        ops += BATCH;
    }
    Rate {
        ops,
        elapsed: started.elapsed(),
    }
}
