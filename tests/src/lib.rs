//! End-to-end tests and benchmarks of the whole stack live in `tests/` and `benches/`.
