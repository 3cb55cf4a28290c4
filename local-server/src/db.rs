//! The SQLite database in the data directory: connection set-up, migrations, the row
//! types and the small queries shared by the verbs and the serving process.
//!
//! Every process (the `serve` daemon and each manager verb) opens the same file; SQLite
//! in WAL mode lets readers run beside the one writer, and `busy_timeout` makes a
//! writer wait for another instead of failing. `synchronous=NORMAL` in WAL mode keeps
//! every committed transaction across a crash of the process (only a power loss can
//! lose the last ones), which is what a lease server needs at thousands of commits a
//! second.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration as StdDuration;

use anyhow::{anyhow, Context};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::proxy::ProxyText;
use crate::schema::{changes, config, leases, licenses, sync_state, usage_peaks};

/// The database file inside the data directory.
pub const DB_FILE: &str = "local.db";

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How long a connection waits for another process's write to finish.
const BUSY_TIMEOUT_MS: u32 = 10_000;

pub type DbPool = Pool<ConnectionManager<SqliteConnection>>;
pub type DbConn = PooledConnection<ConnectionManager<SqliteConnection>>;

/// Milliseconds since the epoch, the storage form of every time (one conversion for
/// all three programs, in `shared_proto::clock`).
pub use shared_proto::clock::{from_millis as from_ms, to_millis as to_ms};

#[derive(Debug)]
struct Pragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        apply_pragmas(conn).map_err(diesel::r2d2::Error::QueryError)
    }
}

fn apply_pragmas(conn: &mut SqliteConnection) -> QueryResult<()> {
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; \
         PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
    ))
}

fn db_url(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(DB_FILE);
    path.to_str().map(str::to_owned).ok_or_else(|| {
        anyhow!(
            "the data directory path {} is not UTF-8",
            data_dir.display()
        )
    })
}

/// Makes the database files readable by the owner only (they hold the proxy
/// credentials): creates the database file 0600 before SQLite does (its `-wal` and
/// `-shm` files take the database's mode), and tightens files an older version made
/// (`chmod` by path, which leaves SQLite's locks alone).
fn restrict_db_files(data_dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let db = data_dir.join(DB_FILE);
    // Only when it does not exist yet: closing any descriptor of an open SQLite file
    // drops the POSIX locks this process's connections hold on it.
    if !db.exists() {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&db)
            .with_context(|| format!("creating {}", db.display()))?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let path = data_dir.join(format!("{DB_FILE}{suffix}"));
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("making {} private", path.display()))?;
        }
    }
    Ok(())
}

/// Opens one connection (pragmas applied, migrations run).
pub fn connect(data_dir: &Path) -> anyhow::Result<SqliteConnection> {
    restrict_db_files(data_dir)?;
    let url = db_url(data_dir)?;
    let mut conn =
        SqliteConnection::establish(&url).with_context(|| format!("opening the database {url}"))?;
    apply_pragmas(&mut conn).context("setting up the database connection")?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Opens the database of an installed data directory; refuses (rather than creating
/// an empty database) when `init` was never run there.
pub fn connect_existing(data_dir: &Path) -> anyhow::Result<SqliteConnection> {
    if !data_dir.join(DB_FILE).exists() {
        anyhow::bail!(
            "{} holds no license server installation: run `local-server init` first",
            data_dir.display()
        );
    }
    connect(data_dir)
}

/// A connection pool on an installed data directory's database (migrations run once).
pub fn pool(data_dir: &Path, size: u32) -> anyhow::Result<DbPool> {
    let mut conn = connect_existing(data_dir)?;
    drop(conn.batch_execute("PRAGMA optimize;"));
    let manager = ConnectionManager::<SqliteConnection>::new(db_url(data_dir)?);
    Pool::builder()
        .max_size(size)
        .connection_timeout(StdDuration::from_secs(30))
        .connection_customizer(Box::new(Pragmas))
        .build(manager)
        .context("opening the database connection pool")
}

fn migrate(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    conn.run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow!("applying the database migrations: {e}"))?;
    Ok(())
}

/// The count of changes the serving process reloads for (see the `changes` table).
pub fn generation(conn: &mut SqliteConnection) -> QueryResult<i64> {
    changes::table.select(changes::generation).first(conn)
}

/// The options file in force, if one was applied.
pub fn load_options(conn: &mut SqliteConnection) -> QueryResult<Option<String>> {
    crate::schema::options::table
        .select(crate::schema::options::text)
        .first(conn)
        .optional()
}

/// Puts `text` in force as the options file.
pub fn store_options(conn: &mut SqliteConnection, text: &str, now_ms: i64) -> QueryResult<usize> {
    use crate::schema::options;
    diesel::insert_into(options::table)
        .values((
            options::id.eq(1),
            options::text.eq(text),
            options::applied_at.eq(now_ms),
        ))
        .on_conflict(options::id)
        .do_update()
        .set((options::text.eq(text), options::applied_at.eq(now_ms)))
        .execute(conn)
}

/// The stored configuration.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = config)]
pub struct ConfigRow {
    pub id: i32,
    pub server_id: String,
    pub endpoints: String,
    pub solme_public_pem: String,
    pub ca_pem: String,
    /// May carry a password, which `Debug` hides.
    pub proxy: Option<ProxyText>,
    pub auto_sync: String,
    pub created_at: i64,
}

/// The synchronization state row.
#[derive(Debug, Clone, Default, Queryable, Selectable)]
#[diesel(table_name = sync_state)]
pub struct SyncStateRow {
    pub id: i32,
    pub sequence: Option<i64>,
    pub revision: Option<i64>,
    pub customer: Option<String>,
    pub issued_at: Option<i64>,
    pub valid_until: Option<i64>,
    pub last_sync_at: Option<i64>,
    pub last_sync_channel: Option<String>,
    pub clock_high_water: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub last_attempt_error: Option<String>,
    pub consecutive_failures: i32,
    pub last_contact_at: Option<i64>,
    pub next_auto_sync_at: Option<i64>,
    pub sync_lock_until: Option<i64>,
    /// The token of the synchronization holding the lock.
    pub sync_lock_owner: Option<String>,
}

/// A license of the license file in force.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = licenses)]
pub struct LicenseRow {
    pub id: i32,
    pub feature: String,
    pub seats: i32,
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
    pub max_borrow_hours: Option<i32>,
}

/// A lease as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = leases)]
pub struct LeaseRow {
    pub id: String,
    pub feature: String,
    pub client: String,
    pub granted_at: i64,
    pub expires_at: i64,
    pub user: String,
    pub host: String,
    /// A borrow: held offline until `expires_at`, without heartbeats.
    pub borrowed: bool,
}

pub fn load_config(conn: &mut SqliteConnection) -> anyhow::Result<ConfigRow> {
    config::table
        .select(ConfigRow::as_select())
        .first(conn)
        .optional()
        .context("reading the configuration")?
        .ok_or_else(|| {
            anyhow!("this data directory has no configuration: run `local-server init` first")
        })
}

pub fn load_sync_state(conn: &mut SqliteConnection) -> QueryResult<SyncStateRow> {
    sync_state::table
        .select(SyncStateRow::as_select())
        .first(conn)
}

pub fn load_licenses(conn: &mut SqliteConnection) -> QueryResult<Vec<LicenseRow>> {
    licenses::table
        .select(LicenseRow::as_select())
        .order((licenses::feature, licenses::id))
        .load(conn)
}

pub fn load_live_leases(conn: &mut SqliteConnection, now_ms: i64) -> QueryResult<Vec<LeaseRow>> {
    leases::table
        .filter(leases::expires_at.gt(now_ms))
        .select(LeaseRow::as_select())
        .load(conn)
}

/// Live leases per feature at `now_ms` (features with none are absent).
pub fn live_by_feature(
    conn: &mut SqliteConnection,
    now_ms: i64,
) -> QueryResult<HashMap<String, i64>> {
    let live: Vec<(String, i64)> = leases::table
        .filter(leases::expires_at.gt(now_ms))
        .group_by(leases::feature)
        .select((leases::feature, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(live.into_iter().collect())
}

pub fn load_peaks(conn: &mut SqliteConnection) -> QueryResult<Vec<(String, i32)>> {
    usage_peaks::table
        .select((usage_peaks::feature, usage_peaks::peak_in_use))
        .load(conn)
}

/// Raises the stored clock high-water mark to `now_ms` (never lowers it).
pub fn raise_high_water(conn: &mut SqliteConnection, now_ms: i64) -> QueryResult<usize> {
    diesel::update(sync_state::table)
        .filter(
            sync_state::clock_high_water
                .is_null()
                .or(sync_state::clock_high_water.lt(now_ms)),
        )
        .set(sync_state::clock_high_water.eq(now_ms))
        .execute(conn)
}

/// Sets the clock high-water mark to `mark`, even lower than it was: only after a direct
/// synchronization showed the clock agrees with the main server's (the lease engine
/// adopts a lowered mark when it notices the change).
pub fn reset_high_water(conn: &mut SqliteConnection, mark: i64) -> QueryResult<usize> {
    diesel::update(sync_state::table)
        .set(sync_state::clock_high_water.eq(mark))
        .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_matches_the_migrations() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut conn = connect(dir.path())?;
        // Loading every column of every table fails if a name or type drifted.
        config::table
            .select(ConfigRow::as_select())
            .load(&mut conn)?;
        sync_state::table
            .select(SyncStateRow::as_select())
            .load(&mut conn)?;
        load_licenses(&mut conn)?;
        load_live_leases(&mut conn, 0)?;
        load_peaks(&mut conn)?;
        assert_eq!(generation(&mut conn)?, 0);
        assert_eq!(load_options(&mut conn)?, None);
        store_options(&mut conn, "# none", 1)?;
        assert_eq!(load_options(&mut conn)?.as_deref(), Some("# none"));
        assert_eq!(
            generation(&mut conn)?,
            1,
            "applying options is a change to reload"
        );
        crate::schema::report_log::table
            .select(crate::report_log::ReportRow::as_select())
            .load(&mut conn)?;
        let history: Vec<(i32, i64, Option<String>)> =
            crate::schema::sync_history::table.load(&mut conn)?;
        assert_eq!(history, [(1, 0, None)], "one row, no request made yet");
        Ok(())
    }

    #[test]
    fn the_stored_proxy_keeps_its_password_out_of_debug() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut conn = connect(dir.path())?;
        let proxy = "http://user:secret@proxy.example:3128";
        let row = ConfigRow {
            id: 1,
            server_id: "00000000-0000-0000-0000-000000000001".into(),
            endpoints: "[]".into(),
            solme_public_pem: String::new(),
            ca_pem: String::new(),
            proxy: Some(proxy.parse()?),
            auto_sync: "off".into(),
            created_at: 0,
        };
        diesel::insert_into(config::table)
            .values(&row)
            .execute(&mut conn)?;
        let stored = load_config(&mut conn)?;
        assert_eq!(stored.proxy.as_ref().map(ProxyText::expose), Some(proxy));
        let shown = format!("{stored:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("user:***@proxy.example"), "{shown}");
        Ok(())
    }

    #[test]
    fn times_round_trip_through_milliseconds() {
        let at = from_ms(1_700_000_000_123);
        assert_eq!(to_ms(at), 1_700_000_000_123);
    }
}
