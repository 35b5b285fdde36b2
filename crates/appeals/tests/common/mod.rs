//! Test databases: a SQLite file in a temporary folder always; a fresh PostgreSQL database
//! when `HOTLINE_TEST_PG_URL` names a server (see `scripts/with-postgres.sh`).

#![allow(dead_code, clippy::unwrap_used)] // test support code

use std::path::PathBuf;
use std::time::Duration;

use appeals::{AppealWriter, WriterConfig};
use chrono::{DateTime, TimeZone, Utc};
use sqlx::Executor;
use tempfile::TempDir;

/// A database for one test, with a folder for its spool.
pub struct TestDb {
    /// URL of the database.
    pub url: String,
    /// Holds the temporary folder (SQLite file, spool).
    pub dir: TempDir,
    /// For PostgreSQL: the server URL to create the database on later (outage tests).
    admin_url: Option<String>,
    name: String,
}

impl TestDb {
    /// The spool folder.
    pub fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// Writer settings with short retries, for tests.
    pub fn writer_config(&self, url: &str) -> WriterConfig {
        let mut c = WriterConfig::new(url, self.spool());
        c.retry_min = Duration::from_millis(20);
        c.retry_max = Duration::from_millis(200);
        c.batch_interval = Duration::from_millis(5);
        c
    }

    /// A writer on this database.
    pub fn writer(&self) -> AppealWriter {
        AppealWriter::start(self.writer_config(&self.url)).unwrap()
    }

    /// A URL that does not work yet, and makes it work when `repair` is called.
    pub fn broken_url(&self) -> String {
        match &self.admin_url {
            None => {
                // A regular file where the database folder should be: cannot create it.
                std::fs::write(self.dir.path().join("blocked"), b"").unwrap();
                format!("sqlite://{}/blocked/hotline.db", self.dir.path().display())
            }
            Some(_) => self.url.clone(),
        }
    }

    /// Makes `broken_url` work.
    pub async fn repair(&self) {
        match &self.admin_url {
            None => std::fs::remove_file(self.dir.path().join("blocked")).unwrap(),
            Some(admin) => create_pg_database(admin, &self.name).await,
        }
    }
}

/// A new SQLite database in a temporary folder.
pub fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/data/hotline.db", dir.path().display());
    TestDb {
        url,
        dir,
        admin_url: None,
        name: String::new(),
    }
}

/// A fresh PostgreSQL database, or `None` (with a notice) when no server is configured.
/// With `create = false` the database is named but not created yet (see `repair`).
pub async fn postgres(test: &str, create: bool) -> Option<TestDb> {
    let Ok(admin) = std::env::var("HOTLINE_TEST_PG_URL") else {
        println!(
            "SKIPPED {test} on PostgreSQL: HOTLINE_TEST_PG_URL is not set (run under scripts/with-postgres.sh)"
        );
        return None;
    };
    let name = format!("t_{}", uuid::Uuid::now_v7().simple());
    if create {
        create_pg_database(&admin, &name).await;
    }
    let base = admin.split('?').next().unwrap();
    let url = format!("{}/{}", &base[..base.rfind('/').unwrap()], name);
    Some(TestDb {
        url,
        dir: tempfile::tempdir().unwrap(),
        admin_url: Some(admin),
        name,
    })
}

async fn create_pg_database(admin: &str, name: &str) {
    let pool = appeals::db::connect(admin, 1, Duration::from_secs(10))
        .await
        .unwrap();
    pool.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    pool.close().await;
}

/// Migrations 1–6 as released, for the upgrade tests (`&OLD_MIGRATIONS[..n]`: the schema a
/// version that had n of them made).
pub const OLD_MIGRATIONS: [&str; 6] = [
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_partner.sql"),
    include_str!("../../migrations/0003_operator_state.sql"),
    include_str!("../../migrations/0004_callback_result.sql"),
    include_str!("../../migrations/0005_access.sql"),
    include_str!("../../migrations/0006_cases.sql"),
];

/// Migration 7 as released: the portable part, then SQLite's and PostgreSQL's own.
pub const MIGRATION_7: [&str; 3] = [
    include_str!("../../migrations/0007_search.sql"),
    include_str!("../../migrations/0007_search.sqlite.sql"),
    include_str!("../../migrations/0007_search.postgres.sql"),
];

/// A pool on `url` with the schema migrations 1–7 made (recorded as the daemon records
/// them), for the upgrade tests of later migrations.
pub async fn schema_7(url: &str) -> sqlx::AnyPool {
    let pool = old_schema(url, &OLD_MIGRATIONS).await;
    let own = if url.starts_with("sqlite:") {
        MIGRATION_7[1]
    } else {
        MIGRATION_7[2]
    };
    for sql in [MIGRATION_7[0], own] {
        pool.execute(sql).await.unwrap();
    }
    sqlx::query("INSERT INTO hotline_migrations (version, name, applied_at) VALUES (7, 'old', 0)")
        .execute(&pool)
        .await
        .unwrap();
    pool
}

/// A pool on `url` with the schema as these migrations (the first ones, in order) made it,
/// recorded in `hotline_migrations` as the daemon records them: a database an older version
/// left, for the upgrade tests.
pub async fn old_schema(url: &str, migrations: &[&str]) -> sqlx::AnyPool {
    let pool = appeals::db::connect(url, 1, Duration::from_secs(10))
        .await
        .unwrap();
    pool.execute(
        "CREATE TABLE hotline_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await
    .unwrap();
    for (i, sql) in migrations.iter().enumerate() {
        pool.execute(*sql).await.unwrap();
        sqlx::query(
            "INSERT INTO hotline_migrations (version, name, applied_at) VALUES ($1, 'old', 0)",
        )
        .bind(i as i64 + 1)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool
}

/// 2024-03-15 at the given UTC time.
pub fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 15, h, m, s).unwrap()
}

/// Runs an async test case on SQLite, and on PostgreSQL when there is one.
/// `on_both!(case, false)` leaves the PostgreSQL database uncreated (for outage tests).
#[macro_export]
macro_rules! on_both {
    ($case:ident) => {
        $crate::on_both!($case, true);
    };
    ($case:ident, $create:expr) => {
        mod $case {
            #[tokio::test]
            async fn sqlite() {
                super::$case(super::common::sqlite()).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(db) = super::common::postgres(stringify!($case), $create).await {
                    super::$case(db).await;
                }
            }
        }
    };
}
