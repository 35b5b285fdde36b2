//! A spool belongs to one database: the operations written for database A are never replayed
//! into database B (the writer refuses to start on it), and `spool::adopt` is the one way to
//! move them on purpose. On SQLite, and on PostgreSQL under `scripts/with-postgres.sh`.

// All test code.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use appeals::{AppealWriter, Error, NewAppeal, Store};
use common::TestDb;
use sqlx::Row;

async fn appeals_in(url: &str) -> i64 {
    let store = Store::connect(url).await.unwrap();
    sqlx::query("SELECT COUNT(*) FROM appeals")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

/// Writes `n` appeals for `a` while it cannot be reached (`broken_url`), so they stay in its
/// spool; returns that URL.
async fn pending_for(a: &TestDb, n: u32) -> String {
    let url_a = a.broken_url();
    let w = AppealWriter::start(a.writer_config(&url_a)).unwrap();
    for i in 0..n {
        w.create(NewAppeal {
            call_id: format!("call-{i}"),
            line: "3758787".into(),
            caller_number: "+79130000000".into(),
            arrived_at: common::at(9, 0, i),
        });
    }
    assert_eq!(w.shutdown().await.backlog, u64::from(n));
    url_a
}

async fn spool_of_a_is_not_replayed_into_b(a: TestDb, b: TestDb) {
    let url_a = pending_for(&a, 10).await;
    let spool_file = a.spool().join("appeals.jsonl");
    let saved = std::fs::read(&spool_file).unwrap();

    // A daemon given database B and A's spool folder: refused, nothing read or changed.
    let mut config_b = a.writer_config(&b.url);
    config_b.spool_dir = a.spool();
    match AppealWriter::start(config_b.clone()) {
        Err(Error::SpoolOfAnotherDatabase {
            owner,
            database,
            waiting,
            ..
        }) => {
            assert_eq!(waiting, 10);
            assert_eq!(owner, appeals::spool::database_identity(&url_a).unwrap());
            assert_eq!(database, appeals::spool::database_identity(&b.url).unwrap());
            assert_ne!(owner, database);
        }
        Err(e) => panic!("wrong refusal: {e}"),
        Ok(_) => panic!("the spool of database A was opened for database B"),
    }
    let message = AppealWriter::start(config_b.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("hotlined spool adopt") && message.contains("10 operations"),
        "{message}"
    );
    assert_eq!(std::fs::read(&spool_file).unwrap(), saved);
    assert_eq!(appeals_in(&b.url).await, 0);

    // Back on its own database, the spool is written where it belongs.
    a.repair().await;
    let w = AppealWriter::start(a.writer_config(&url_a)).unwrap();
    assert!(w.flushed(Duration::from_secs(30)).await, "{:?}", w.stats());
    w.shutdown().await;
    assert_eq!(appeals_in(&url_a).await, 10);
    assert_eq!(appeals_in(&b.url).await, 0);

    // Once empty, the folder may serve another database.
    let w = AppealWriter::start(config_b).unwrap();
    w.shutdown().await;
}

/// Moving a spool on purpose: `adopt` gives its waiting operations to database B.
async fn adopted_spool_goes_to_the_new_database(a: TestDb, b: TestDb) {
    let url_a = pending_for(&a, 5).await;
    let (previous, waiting) = appeals::spool::adopt(&a.spool(), &b.url).unwrap();
    assert_eq!(
        previous,
        Some(appeals::spool::database_identity(&url_a).unwrap())
    );
    assert_eq!(waiting, 5);
    let mut config_b = a.writer_config(&b.url);
    config_b.spool_dir = a.spool();
    let w = AppealWriter::start(config_b).unwrap();
    assert!(w.flushed(Duration::from_secs(30)).await, "{:?}", w.stats());
    w.shutdown().await;
    assert_eq!(appeals_in(&b.url).await, 5);
    a.repair().await;
    assert_eq!(appeals_in(&url_a).await, 0);
    // The spool is empty again: A may have it back.
    AppealWriter::start(a.writer_config(&url_a))
        .unwrap()
        .shutdown()
        .await;
}

macro_rules! two_databases {
    ($case:ident) => {
        mod $case {
            #[tokio::test]
            async fn sqlite() {
                super::$case(super::common::sqlite(), super::common::sqlite()).await;
            }

            #[tokio::test]
            async fn postgres() {
                let name = stringify!($case);
                let (Some(a), Some(b)) = (
                    super::common::postgres(name, false).await,
                    super::common::postgres(name, true).await,
                ) else {
                    return;
                };
                super::$case(a, b).await;
            }
        }
    };
}

two_databases!(spool_of_a_is_not_replayed_into_b);
two_databases!(adopted_spool_goes_to_the_new_database);

#[test]
fn identity_names_the_database_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let a = format!("sqlite://{}/x/../hotline.db", dir.path().display());
    let b = format!("sqlite:{}/hotline.db?mode=rwc", dir.path().display());
    let real = std::fs::canonicalize(dir.path()).unwrap();
    // `..` is kept by `absolute`, but the existing folders are resolved.
    let id_b = appeals::spool::database_identity(&b).unwrap();
    assert_eq!(id_b, format!("sqlite:{}/hotline.db", real.display()));
    assert!(appeals::spool::database_identity(&a).is_ok());
    // the same once the file exists (the folder was resolved before, the file is now)
    std::fs::write(dir.path().join("hotline.db"), b"").unwrap();
    assert_eq!(appeals::spool::database_identity(&b).unwrap(), id_b);
    let pg =
        appeals::spool::database_identity("postgres://u:secret@db.example:5433/hotline").unwrap();
    assert_eq!(pg, "postgres://u@db.example:5433/hotline");
    let pg2 = appeals::spool::database_identity(
        "postgresql://u:other@db.example:5433/hotline?sslmode=disable",
    )
    .unwrap();
    assert_eq!(pg, pg2);
}
