//! The building blocks of `solme-bench`'s main-server part: the crypto floor of one
//! sync, CPU time of processes and threads, a throw-away PostgreSQL, and the sync load
//! generator; and the local server's largest options file. They measure and print;
//! nothing here asserts a figure (timing belongs to benchmarks, never to tests).

pub mod cpu;
pub mod floor;
pub mod options_file;
pub mod postgres;
pub mod sync_load;
