//! How many statements a page of citizens' cards costs, on SQLite and, under
//! `scripts/with-postgres.sh`, PostgreSQL: the phones of a whole page are read in one
//! statement, not one per card. The statements are counted from sqlx's own statement log
//! (`sqlx::query` events), through a subscriber installed for this test binary alone — one
//! test, so nothing else runs statements meanwhile.

// Test code.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use appeals::{CitizenFields, CitizenFilter, Page, Store};
use common::TestDb;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Statements run so far that read `citizen_phones`.
static PHONE_READS: AtomicUsize = AtomicUsize::new(0);

/// Counts sqlx's statement events whose SQL names `citizen_phones`.
struct CountPhoneReads;

/// Whether an event's statement text names `citizen_phones`.
#[derive(Default)]
struct Names(bool);

impl Visit for Names {
    fn record_str(&mut self, field: &Field, value: &str) {
        if matches!(field.name(), "db.statement" | "summary") && value.contains("citizen_phones") {
            self.0 = true;
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl Subscriber for CountPhoneReads {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.target() == "sqlx::query"
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, e: &Event<'_>) {
        let mut n = Names::default();
        e.record(&mut n);
        if n.0 {
            PHONE_READS.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

const CARDS: usize = 12;

async fn a_page_reads_its_phones_once(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    for i in 0..CARDS {
        let card = CitizenFields {
            name: format!("Житель {i:02}"),
            phones: vec![format!("+791300000{i:02}"), format!("+738320000{i:02}")],
            ..CitizenFields::default()
        };
        store.create_citizen(&card).await.unwrap();
    }
    let all = Page {
        offset: 0,
        limit: 100,
    };
    PHONE_READS.store(0, Ordering::SeqCst);
    let page = store
        .search_citizens(&CitizenFilter::default(), all)
        .await
        .unwrap();
    let reads = PHONE_READS.swap(0, Ordering::SeqCst);
    assert_eq!(page.len(), CARDS);
    assert!(page.iter().all(|c| c.card.phones.len() == 2));
    assert_eq!(reads, 1, "{CARDS} cards: their phones in one statement");
    // an empty page reads no phones at all
    let none = store
        .search_citizens(
            &CitizenFilter {
                name: Some("нет такого".into()),
                ..CitizenFilter::default()
            },
            all,
        )
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(PHONE_READS.swap(0, Ordering::SeqCst), 0);
    store.close().await;
}

#[tokio::test]
async fn a_page_of_cards_reads_its_phones_in_one_statement() {
    // before any statement runs, so every sqlx call site sees this subscriber
    tracing::subscriber::set_global_default(CountPhoneReads).unwrap();
    a_page_reads_its_phones_once(common::sqlite()).await;
    if let Some(db) = common::postgres("a_page_reads_its_phones_once", true).await {
        a_page_reads_its_phones_once(db).await;
    }
}
