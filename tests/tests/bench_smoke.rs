//! The benchmark command runs to the end at tiny sizes and prints every figure. Only
//! that is asserted: the figures themselves belong to `BENCHMARKS.md`, never to a test.

use std::process::Command;

use tests::bench::postgres;

#[test]
fn the_benchmark_completes_and_prints_every_figure() {
    let output = Command::new(env!("CARGO_BIN_EXE_solme-bench"))
        .args([
            "--syncs",
            "40",
            "--ids",
            "30",
            "--active-ids",
            "20",
            "--concurrency",
            "4",
            "--floor-iterations",
            "20",
            "--seconds",
            "1",
            "--mails",
            "4",
            "--storm-clients",
            "20",
            "--storm-lease-seconds",
            "6",
            "--mix-clients",
            "20",
            "--mix-seconds",
            "3",
            "--parts",
            "main,local,storm,mail,admin-scale",
            "--scale-ids",
            "300",
            "--scale-customers",
            "30",
            "--scale-audit-entries",
            "3000",
            "--scale-requests",
            "2",
        ])
        // No `cargo build` from inside the test: the test build made the binaries.
        .env_remove("CARGO")
        .env_remove("SOLME_BENCH_NO_POSTGRES")
        .output()
        .expect("run solme-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "solme-bench failed:\n{stdout}\n{stderr}"
    );
    let mut expected = vec![
        "crypto floor of one sync: Ed25519 verify ",
        " + Ed25519 sign ",
        " + X25519 key generation and agreement ",
        " + TLS handshake, server share ",
        "-- SQLite, 1 main-server process, 30 registered ids",
        "new connections: ",
        "kept alive: ",
        "main-server CPU ",
        "load generator CPU ",
        "main-server CPU per new-connection sync on SQLite: ",
        "idle resident memory",
        "20 programs hold a seat each",
        "server killed (SIGKILL), down ",
        "every program served again ",
        "during the storm p50 ",
        "seats after the storm: 20 in use on the server, 20 held by the programs; 0 lost",
        " 0 given twice",
        "RLM mix, every time ÷60",
        "mix throughput: ",
        "0 seats in use after every program returned its own",
        "mails/s",
    ];
    let with_postgres = postgres::find().is_some();
    if with_postgres {
        expected.extend([
            "-- PostgreSQL (same machine, fsync on), 1 main-server process",
            "-- PostgreSQL (same machine, fsync on), 2 main-server processes",
            "PostgreSQL CPU ",
            "PostgreSQL / SQLite syncs/s with 1 main-server process: new connections ",
            "PostgreSQL / SQLite syncs/s with 2 main-server processes: new connections ",
            "== Operators' views at scale",
            "filled in ",
            "audit: one customer (customer_id=…)",
            "audit verify, new entries only",
        ]);
        // Every audit view answered (a refused or missing one prints "not measured").
        for line in stdout.lines().filter(|l| l.starts_with("audit")) {
            assert!(!line.contains("not measured"), "{line}");
        }
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must measure PostgreSQL too: install it"
        );
        eprintln!("notice: PostgreSQL is not installed; its figures were not checked");
    }
    for text in expected {
        assert!(stdout.contains(text), "{text:?} missing from:\n{stdout}");
    }
    // Every figure is a number, never a placeholder.
    assert!(
        !stdout.contains("NaN") && !stdout.contains("inf "),
        "{stdout}"
    );
}
