//! A throw-away PostgreSQL for the benchmark: `initdb` in a temporary directory, a free
//! loopback port, durable settings (fsync and synchronous commit on, as in
//! production), stopped and removed on drop. As root it runs as the `postgres` user
//! (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// A running PostgreSQL; stopped (immediate mode) and deleted on drop.
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_postgres_user: bool,
    port: u16,
    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub url: String,
}

/// The newest installed PostgreSQL's `bin` directory (Debian layout or `PATH`).
pub fn find() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop().or_else(|| {
        std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).find(|dir| dir.join("initdb").is_file()))
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .is_some_and(|o| o.stdout.trim_ascii() == b"0")
}

impl Postgres {
    /// Creates and starts a cluster with room for `max_connections`.
    pub fn start(bin: &Path, max_connections: u32) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("solme-bench-pg-")
            .tempdir()
            .context("making PostgreSQL's directory")?;
        let as_postgres_user = is_root();
        if as_postgres_user {
            let status = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .context("running chown")?;
            if !status.success() {
                bail!(
                    "could not hand {} to the postgres user",
                    dir.path().display()
                );
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        let pg = Self {
            bin: bin.to_path_buf(),
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            dir,
            as_postgres_user,
            port,
        };
        let data = pg.dir.path().join("data");
        pg.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
            ],
        )?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections={max_connections} \
             -c fsync=on -c synchronous_commit=on",
            pg.dir.path().display()
        );
        let log = pg.dir.path().join("log");
        pg.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-w".as_ref(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "start".as_ref(),
            ],
        )?;
        Ok(pg)
    }

    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
        let program = self.bin.join(program);
        let output = if self.as_postgres_user {
            // `su -c` takes one shell command line: quote every word.
            let line = std::iter::once(program.as_os_str())
                .chain(args.iter().copied())
                .map(|word| format!("'{}'", word.to_string_lossy().replace('\'', r"'\''")))
                .collect::<Vec<_>>()
                .join(" ");
            Command::new("su").args(["postgres", "-c", &line]).output()
        } else {
            Command::new(&program).args(args).output()
        }
        .with_context(|| format!("running {}", program.display()))?;
        if !output.status.success() {
            bail!(
                "{} failed: {}{}",
                program.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// The postmaster's process id (the first line of `postmaster.pid`).
    pub fn pid(&self) -> Result<u32> {
        let text = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .context("reading postmaster.pid")?;
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .context("postmaster.pid has no process id")
    }

    /// A new empty database on this server, and its URL.
    pub fn database(&self, name: &str) -> Result<String> {
        use diesel::{Connection, PgConnection, RunQueryDsl};
        let mut conn = PgConnection::establish(&self.url).context("connecting to PostgreSQL")?;
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .with_context(|| format!("creating the database {name}"))?;
        Ok(format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            self.port
        ))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "stop".as_ref(),
            ],
        );
    }
}
