//! The building blocks of `solme-bench`'s main-server part: the crypto floor of one
//! sync, CPU time of processes and threads, a throw-away PostgreSQL, and the sync load
//! generator; the local server's largest options file; and the licensed programs of the
//! storm and load-mix cases, made with the client library. They measure and print;
//! nothing here asserts a figure (timing belongs to benchmarks, never to tests).

pub mod admin_scale;
pub mod client_load;
pub mod cpu;
pub mod floor;
pub mod options_file;
pub mod postgres;
pub mod sync_load;
