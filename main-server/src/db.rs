//! Database access: one connection type over SQLite and PostgreSQL, the pools, the
//! embedded migrations and the time conversion used by every column.
//!
//! SQLite is the zero-set-up default (`DATA_DIR/main.db`); PostgreSQL is chosen by a
//! `postgres://` URL and lets several `serve` processes share one registry. Nothing that
//! matters lives in process memory, so those processes behave as one server.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel::r2d2::{self, ManageConnection, R2D2Connection};
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use secrecy::{ExposeSecret, SecretString};

/// The migrations are written once, in `migrations/both`, where the two dialects agree:
/// that is all of SQLite's. PostgreSQL adds a few of its own (`migrations/postgres`).
const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/both");
const POSTGRES_OWN_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// PostgreSQL's migrations: the shared ones and its own (the harness runs them all in
/// version order).
struct PostgresMigrations;

impl MigrationSource<Pg> for PostgresMigrations {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<Pg>>>> {
        let mut all = MigrationSource::<Pg>::migrations(&MIGRATIONS)?;
        all.extend(MigrationSource::<Pg>::migrations(&POSTGRES_OWN_MIGRATIONS)?);
        Ok(all)
    }
}

/// Arbitrary constant naming the advisory lock that keeps two `serve` processes from
/// running the PostgreSQL migrations at the same moment.
const MIGRATION_LOCK_KEY: i64 = 0x5017_e11c_0000_0001;

/// Every pooled SQLite connection gets these: wait (rather than fail) on a locked
/// database, WAL so readers never block the writer, enforced foreign keys, and
/// `synchronous=FULL`: every commit is on disk (the WAL fsynced) before it returns, so
/// no answer leaves before what it reports survives a power cut. The writer's group
/// commit (see `writer.rs`) shares one fsync among all the syncs waiting.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";

/// Every PostgreSQL connection waits for its commits to be flushed to the WAL on disk
/// before they return. A server or database configured with `synchronous_commit =
/// off` is overridden for our sessions; the stronger levels (`remote_write`, `on`,
/// `remote_apply`) and `local` are already durable here and are left as configured.
const POSTGRES_DURABLE_COMMITS: &str = "SELECT set_config('synchronous_commit', 'on', false) \
     WHERE current_setting('synchronous_commit') = 'off'";

/// The connection both backends share; queries written against it run on either.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Where the registry lives. The PostgreSQL URL may carry a password (in its user
/// part or as a `password=` parameter), so it is held as a secret: `Debug` prints
/// `[REDACTED]` and [`DbTarget::describe`] shows only user, host and database.
#[derive(Clone, Debug)]
pub enum DbTarget {
    Sqlite(String),
    Postgres(SecretString),
}

impl DbTarget {
    /// The `--database-url` if given (`postgres://…`, `postgresql://…`, `sqlite://PATH`
    /// or a plain path), else `DATA_DIR/main.db`.
    pub fn from_options(data_dir: &Path, url: Option<&str>) -> anyhow::Result<Self> {
        match url.map(str::trim).filter(|u| !u.is_empty()) {
            None => Ok(Self::Sqlite(data_dir.join("main.db").display().to_string())),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Self::Postgres(SecretString::from(url.to_owned())))
            }
            Some(url) => {
                let path = url.strip_prefix("sqlite://").unwrap_or(url);
                anyhow::ensure!(
                    !path.contains("://"),
                    "database URL {url:?} is neither postgres:// nor an SQLite path"
                );
                Ok(Self::Sqlite(path.to_owned()))
            }
        }
    }

    /// A description safe to log: no password and no query parameters (which may
    /// hold `password=` or other credentials).
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("SQLite at {path}"),
            Self::Postgres(url) => format!("PostgreSQL at {}", redact_postgres_url(url)),
        }
    }

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        match self {
            Self::Sqlite(path) => {
                let mut conn =
                    SqliteConnection::establish(path).map_err(r2d2::Error::ConnectionError)?;
                conn.batch_execute(SQLITE_PRAGMAS)
                    .map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
            Self::Postgres(url) => {
                let mut conn = PgConnection::establish(url.expose_secret())
                    .map_err(r2d2::Error::ConnectionError)?;
                conn.batch_execute(POSTGRES_DURABLE_COMMITS)
                    .map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Postgres(conn))
            }
        }
    }

    /// A connection of its own, outside the pools (the writer threads keep one each).
    pub fn connect_alone(&self) -> anyhow::Result<DbConnection> {
        self.connect()
            .with_context(|| format!("connecting to the database ({})", self.describe()))
    }
}

/// `user@host:port/db` of a PostgreSQL URL: the password of the user part and the
/// whole query (`?password=…`, `sslpassword=…`, …) are left out.
fn redact_postgres_url(url: &SecretString) -> String {
    let url = url.expose_secret();
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .unwrap_or(url);
    let (rest, query) = match rest.split_once('?') {
        Some((rest, _)) => (rest, " (connection parameters hidden)"),
        None => (rest, ""),
    };
    // A password may contain '@' (it should be percent-encoded, but be safe): the
    // host part follows the last one.
    let shown = match rest.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{user}@{host}")
        }
        None => rest.to_owned(),
    };
    format!("{shown}{query}")
}

/// r2d2 manager that builds the right variant for the target and sets the SQLite
/// pragmas on every new connection.
#[derive(Debug)]
pub struct Manager {
    target: DbTarget,
}

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        self.target.connect()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConn = r2d2::PooledConnection<Manager>;

/// The pools the server uses. On SQLite, writes go through a pool of one connection:
/// SQLite allows one writer anyway, and queueing in the pool is far cheaper than
/// SQLite's sleep-and-retry busy handler. On PostgreSQL both are the same pool and the
/// database's row locks do the ordering.
#[derive(Clone)]
pub struct Db {
    pub write: Pool,
    pub read: Pool,
    pub target: DbTarget,
}

impl Db {
    /// Opens the pools and runs the pending migrations.
    pub fn open(target: DbTarget, pool_size: u32) -> anyhow::Result<Self> {
        // A pooled SQLite connection is a file handle that cannot go stale, so the
        // check-out test (a parsed `SELECT 1` on every check-out) is pure cost there; a
        // PostgreSQL connection can die with its server and keeps the test.
        let test_on_check_out = matches!(target, DbTarget::Postgres(_));
        let build = |size: u32| {
            r2d2::Pool::builder()
                .max_size(size.max(1))
                .min_idle(Some(1))
                .test_on_check_out(test_on_check_out)
                .connection_timeout(Duration::from_secs(30))
                .build(Manager {
                    target: target.clone(),
                })
                .with_context(|| format!("opening the database ({})", target.describe()))
        };
        let db = match &target {
            DbTarget::Sqlite(_) => {
                let write = build(1)?;
                let read = build(pool_size)?;
                Self {
                    write,
                    read,
                    target: target.clone(),
                }
            }
            DbTarget::Postgres(_) => {
                let pool = build(pool_size)?;
                Self {
                    write: pool.clone(),
                    read: pool,
                    target: target.clone(),
                }
            }
        };
        let mut conn = db.write.get().context("connecting to the database")?;
        run_migrations(&mut conn)?;
        let durability = durability(&mut conn)?;
        if durability.durable {
            log::info!("database commits are durable: {}", durability.setting);
        } else {
            log::warn!(
                "database commits are NOT durable ({}): a power cut can lose answered \
                 syncs; fix the database server's configuration",
                durability.setting
            );
        }
        Ok(db)
    }
}

/// What the database does with a commit before it returns, as read back from the
/// connection itself.
#[derive(Debug)]
pub struct Durability {
    /// The settings, e.g. `synchronous=FULL` or `synchronous_commit=on fsync=on`.
    pub setting: String,
    /// Whether a returned commit survives a power cut.
    pub durable: bool,
}

#[derive(diesel::QueryableByName)]
struct Setting {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

/// Reads the durability settings in force on `conn`. (`fsync=off` is a server-wide
/// setting no session can change: it is reported, not overridden.)
pub fn durability(conn: &mut DbConnection) -> anyhow::Result<Durability> {
    let read = |conn: &mut DbConnection, query: &str| -> anyhow::Result<String> {
        let rows: Vec<Setting> = diesel::sql_query(query)
            .load(conn)
            .with_context(|| format!("reading the database's durability ({query})"))?;
        rows.into_iter()
            .next()
            .map(|row| row.value)
            .with_context(|| format!("{query} returned nothing"))
    };
    match conn {
        DbConnection::Sqlite(_) => {
            // 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
            let level = read(
                conn,
                "SELECT CAST(synchronous AS TEXT) AS value FROM pragma_synchronous",
            )?;
            let name = match level.as_str() {
                "0" => "OFF",
                "1" => "NORMAL",
                "2" => "FULL",
                "3" => "EXTRA",
                other => other,
            };
            Ok(Durability {
                setting: format!("SQLite synchronous={name}"),
                durable: matches!(name, "FULL" | "EXTRA"),
            })
        }
        DbConnection::Postgres(_) => {
            let commit = read(
                conn,
                "SELECT current_setting('synchronous_commit') AS value",
            )?;
            let fsync = read(conn, "SELECT current_setting('fsync') AS value")?;
            Ok(Durability {
                durable: commit != "off" && fsync == "on",
                setting: format!("PostgreSQL synchronous_commit={commit} fsync={fsync}"),
            })
        }
    }
}

/// Applies the embedded migrations of the connection's dialect.
pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<()> {
    match conn {
        DbConnection::Sqlite(conn) => {
            conn.run_pending_migrations(MIGRATIONS)
                .map_err(|e| anyhow::anyhow!("running the SQLite migrations: {e}"))?;
        }
        DbConnection::Postgres(conn) => {
            // Session-level advisory lock: concurrent starts wait for each other instead
            // of racing to create the same tables.
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .execute(conn)
                .context("taking the migration lock")?;
            let result = conn
                .run_pending_migrations(PostgresMigrations)
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("running the PostgreSQL migrations: {e}"));
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                .execute(conn)
                .context("releasing the migration lock")?;
            result?;
        }
    }
    Ok(())
}

/// Times are stored as Unix milliseconds, the same on both backends.
pub use shared_proto::clock::{from_millis, to_millis};

#[cfg(test)]
mod tests {
    use super::*;

    /// Selecting every column of every table of `schema.rs` from a freshly migrated
    /// database fails if a table or column of the migrations drifted from it.
    #[test]
    fn schema_matches_the_migrations() -> anyhow::Result<()> {
        use crate::schema::*;
        use diesel::prelude::*;

        let dir = tempfile::tempdir()?;
        let db = Db::open(DbTarget::from_options(dir.path(), None)?, 1)?;
        let conn = &mut db.write.get()?;
        // A macro, not a loop: each table of the schema is a type of its own.
        macro_rules! select_every_column {
            ($table:ident) => {
                $table::table
                    .select($table::all_columns)
                    .limit(0)
                    .execute(conn)?
            };
        }
        select_every_column!(customers);
        select_every_column!(customer_emails);
        select_every_column!(servers);
        select_every_column!(licenses);
        select_every_column!(used_requests);
        select_every_column!(key_clear_requests);
        select_every_column!(audit_log);
        select_every_column!(sync_usage);
        select_every_column!(operators);
        select_every_column!(reminders);
        select_every_column!(console_sessions);
        select_every_column!(portal_links);
        select_every_column!(portal_sessions);
        select_every_column!(portal_link_requests);
        select_every_column!(sync_history);
        Ok(())
    }

    /// Every connection of both SQLite pools commits with `synchronous=FULL`.
    #[test]
    fn sqlite_commits_are_durable_on_every_pooled_connection() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let db = Db::open(DbTarget::from_options(dir.path(), None)?, 3)?;
        let mut held = Vec::new();
        for pool in [&db.write, &db.read, &db.read, &db.read] {
            let mut conn = pool.get()?;
            let durability = durability(&mut conn)?;
            assert_eq!(durability.setting, "SQLite synchronous=FULL");
            assert!(durability.durable);
            // Held, so that the next check-out is another connection.
            held.push(conn);
        }
        Ok(())
    }

    /// A database configured with `synchronous_commit = off` still gets synchronous
    /// commits on the server's connections (when a test PostgreSQL is configured).
    #[test]
    fn postgres_commits_are_synchronous_even_where_the_database_says_off() -> anyhow::Result<()> {
        let Ok(base) = std::env::var("SOLME_TEST_DATABASE_URL") else {
            eprintln!("notice: SOLME_TEST_DATABASE_URL is not set; skipping");
            return Ok(());
        };
        let name = format!("durable_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(&base)?;
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin)?;
        diesel::sql_query(format!(
            "ALTER DATABASE {name} SET synchronous_commit = off"
        ))
        .execute(&mut admin)?;
        let (head, query) = match base.split_once('?') {
            Some((head, query)) => (head, format!("?{query}")),
            None => (base.as_str(), String::new()),
        };
        let (server, _) = head
            .rsplit_once('/')
            .filter(|(server, _)| server.contains("://") && !server.ends_with('/'))
            .unwrap_or((head, ""));
        let url = format!("{server}/{name}{query}");
        // A plain connection sees the database's `off` ...
        let mut plain = PgConnection::establish(&url)?;
        let rows: Vec<Setting> =
            diesel::sql_query("SELECT current_setting('synchronous_commit') AS value")
                .load(&mut plain)?;
        assert_eq!(rows.first().map(|r| r.value.as_str()), Some("off"));
        drop(plain);
        // ... the server's pooled ones do not.
        let dir = tempfile::tempdir()?;
        let db = Db::open(DbTarget::from_options(dir.path(), Some(&url))?, 2)?;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut conn = db.write.get()?;
            let durability = durability(&mut conn)?;
            assert!(
                durability
                    .setting
                    .starts_with("PostgreSQL synchronous_commit=on "),
                "{}",
                durability.setting
            );
            held.push(conn);
        }
        let mut alone = db.target.connect_alone()?;
        assert!(durability(&mut alone)?
            .setting
            .starts_with("PostgreSQL synchronous_commit=on "));
        Ok(())
    }

    fn described(url: &str) -> String {
        DbTarget::from_options(Path::new("/data"), Some(url))
            .map(|t| format!("{} {t:?}", t.describe()))
            .unwrap_or_default()
    }

    #[test]
    fn postgres_urls_are_described_and_debugged_without_secrets() {
        for (url, shown) in [
            (
                "postgres://solme:s3cret@db.example:5432/licensing",
                "PostgreSQL at solme@db.example:5432/licensing",
            ),
            (
                "postgresql://solme@db.example/licensing?password=s3cret&sslmode=require",
                "PostgreSQL at solme@db.example/licensing (connection parameters hidden)",
            ),
            (
                "postgres://solme:p@ss@db.example/licensing",
                "PostgreSQL at solme@db.example/licensing",
            ),
        ] {
            let text = described(url);
            assert!(text.starts_with(shown), "{text}");
            assert!(!text.contains("s3cret") && !text.contains("p@ss"), "{text}");
        }
        assert_eq!(
            described("/x/main.db"),
            "SQLite at /x/main.db Sqlite(\"/x/main.db\")"
        );
    }
}
