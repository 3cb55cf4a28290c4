//! The `tests` crate's library: the benchmarks' building blocks, used by `solme-bench`
//! and by its smoke run in the test suite, and the simulation behind `solme-sim`
//! ([`sim`]). The process harness every crate's tests
//! share is the separate `test-harness` crate (`tests/harness/`).

pub mod bench;
pub mod sim;
