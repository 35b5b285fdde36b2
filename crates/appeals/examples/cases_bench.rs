//! The `cases` section of `make bench` (bench/run.py): fills a database with citizens and
//! appeals, then times what the case work reads at that size — full text search of the
//! appeals and the cards, and the first page of each worklist.
//!
//! ```text
//! cargo run --release -p appeals --example cases_bench -- URL [APPEALS [CITIZENS]]
//! ```
//!
//! URL is a fresh SQLite file (`sqlite:///tmp/x.db`) or an empty PostgreSQL database; the
//! defaults are 1 000 000 appeals and 200 000 citizens. The fill writes straight SQL in big
//! multi-row statements (the FTS triggers and GIN indexes of migration 7 work as for any
//! insert), over a year of calls: Russian names, Novosibirsk streets and districts, mobile
//! numbers, 60 % of calls from a citizen's number (linked), 14 % abandoned, notes on a third,
//! a service and due date on half, open ones assigned to 50 operators. Then
//! [`Store::rebuild_missed`] fills the missed list the writer would have kept. Each query
//! runs 7 times: the first (cold) and the median are printed as one JSON object on stdout.
//! A "count" is the list's `total`, counted up to [`Total::CAP`] as the API counts it.
//!
//! A database that already has appeals (one this example filled before) is not filled again:
//! only the reads are timed (`fill_seconds` is then `null`), so two builds can be compared
//! on the same data.

use std::time::{Duration, Instant};

use appeals::{CitizenFilter, Page, SearchFilter, Store, Total, Worklist};
use chrono::{TimeZone, Utc};
use sqlx::Executor;

const SURNAMES: &[&str] = &[
    "Иванов",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Петров",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
    "Орлов",
    "Андреев",
    "Макаров",
    "Никитин",
    "Захаров",
    "Зайцев",
    "Соловьёв",
    "Борисов",
    "Яковлев",
    "Григорьев",
    "Романов",
    "Воробьёв",
    "Сергеев",
    "Кузьмин",
    "Фролов",
    "Александров",
    "Дмитриев",
    "Королёв",
    "Гусев",
    "Киселёв",
    "Ильин",
    "Максимов",
    "Поляков",
    "Сорокин",
    "Виноградов",
    "Ковалёв",
    "Белов",
    "Медведев",
    "Антонов",
    "Тарасов",
    "Жуков",
    "Баранов",
    "Филиппов",
    "Комаров",
    "Давыдов",
    "Беляев",
    "Герасимов",
    "Богданов",
    "Осипов",
    "Сидоров",
    "Матвеев",
    "Титов",
    "Марков",
    "Миронов",
];
const MEN: &[(&str, &str)] = &[
    ("Александр", "Александрович"),
    ("Сергей", "Сергеевич"),
    ("Владимир", "Владимирович"),
    ("Николай", "Николаевич"),
    ("Иван", "Иванович"),
    ("Пётр", "Петрович"),
    ("Михаил", "Михайлович"),
    ("Виктор", "Викторович"),
    ("Юрий", "Юрьевич"),
    ("Анатолий", "Анатольевич"),
    ("Геннадий", "Геннадьевич"),
    ("Борис", "Борисович"),
];
const WOMEN: &[(&str, &str)] = &[
    ("Мария", "Ивановна"),
    ("Анна", "Петровна"),
    ("Галина", "Николаевна"),
    ("Валентина", "Сергеевна"),
    ("Людмила", "Александровна"),
    ("Татьяна", "Владимировна"),
    ("Нина", "Михайловна"),
    ("Тамара", "Викторовна"),
    ("Зинаида", "Фёдоровна"),
    ("Любовь", "Андреевна"),
    ("Надежда", "Борисовна"),
    ("Раиса", "Степановна"),
];
const STREETS: &[&str] = &[
    "ул. Ленина",
    "Красный проспект",
    "ул. Петухова",
    "ул. Титова",
    "ул. Богдана Хмельницкого",
    "ул. Кирова",
    "ул. Гоголя",
    "ул. Ватутина",
    "ул. Станиславского",
    "ул. Плахотного",
    "ул. Народная",
    "ул. Блюхера",
    "ул. Немировича-Данченко",
    "ул. Забалуева",
    "ул. Зорге",
    "ул. Сибиряков-Гвардейцев",
    "ул. Выборная",
    "ул. Бориса Богаткова",
    "ул. Дуси Ковальчук",
    "ул. Учительская",
    "ул. Фрунзе",
    "ул. Мичурина",
    "ул. Каменская",
    "пр. Карла Маркса",
    "ул. Танкистов",
    "ул. Широкая",
    "ул. Связистов",
    "ул. Телевизионная",
    "ул. Троллейная",
    "ул. Курчатова",
    "ул. Челюскинцев",
    "ул. Дачная",
];
const DISTRICTS: &[&str] = &[
    "dzerzhinsky",
    "zheleznodorozhny",
    "zaeltsovsky",
    "kalininsky",
    "kirovsky",
    "leninsky",
    "oktyabrsky",
    "pervomaisky",
    "sovetsky",
    "tsentralny",
];
const SERVICES: &[&str] = &[
    "home-care",
    "delivery",
    "social-rental",
    "social-support",
    "long-term-care",
    "pension",
    "health",
];
const NOTES: &[&str] = &[
    "Просит доставить продукты и лекарства",
    "Нужна помощь с оформлением субсидии на оплату ЖКУ",
    "Одинокая, плохо слышит, говорить громко",
    "Жалоба на задержку пенсии",
    "Просит записать к врачу на дом",
    "Нужна сиделка после выписки из больницы",
    "Вопрос по компенсации за проезд",
    "Сломался холодильник, просит помощи волонтёров",
    "Перезвонить вечером, днём у врача",
    "Спрашивает про путёвку в санаторий",
    "Нужен социальный работник два раза в неделю",
    "Просит помочь с покупкой слухового аппарата",
];
const RESOLUTIONS: &[&str] = &[
    "Передано в КЦСОН, заявка принята",
    "Разъяснён порядок оформления",
    "Доставка выполнена волонтёрами",
    "Отказано: не относится к полномочиям",
    "Записан на приём",
];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }
}

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn opt(s: Option<String>) -> String {
    s.map_or("NULL".into(), |s| q(&s))
}

fn num(v: Option<i64>) -> String {
    v.map_or("NULL".into(), |v| v.to_string())
}

/// The `total` of the appeal list as `GET /api/v1/appeals` gives it: counted up to
/// [`Total::CAP`] (the rows of the output say 10000 when there are more).
async fn total(store: &Store, f: &SearchFilter) -> Result<usize, appeals::Error> {
    let t = store.count_at_most(f, Total::CAP).await?;
    Ok(usize::try_from(t.count).unwrap_or(usize::MAX))
}

/// A citizen's phone: +7 913 … made from its number.
fn phone(i: usize) -> String {
    format!("+79{:09}", 130_000_000 + i)
}

/// Fills an empty database with `citizens` cards and `appeals` appeals over the year before
/// `now_ms` and the missed list; returns how long each part took, in seconds.
async fn fill(
    store: &Store,
    appeals: usize,
    citizens: usize,
    now_ms: i64,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let pool = store.pool().clone();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let day_ms: i64 = 86_400_000;

    let t0 = Instant::now();
    // citizens with one or two phones
    let mut ids = Vec::with_capacity(citizens);
    for chunk in (0..citizens).collect::<Vec<_>>().chunks(1000) {
        let mut rows = Vec::with_capacity(chunk.len());
        let mut phones = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let id = uuid::Uuid::now_v7().to_string();
            let surname = rng.pick(SURNAMES);
            let (name, patronymic) = if rng.chance(65) {
                WOMEN[rng.below(WOMEN.len())]
            } else {
                MEN[rng.below(MEN.len())]
            };
            let surname = if WOMEN.iter().any(|w| w.0 == name) {
                format!("{surname}а")
            } else {
                surname.to_owned()
            };
            let full = format!("{surname} {name} {patronymic}");
            let address = format!(
                "{}, {}, кв. {}",
                rng.pick(STREETS),
                1 + rng.below(150),
                1 + rng.below(300)
            );
            let notes = rng.chance(20).then(|| rng.pick(NOTES).to_owned());
            rows.push(format!(
                "({}, {}, {}, {}, {}, {}, {now_ms}, {now_ms})",
                q(&id),
                q(&full),
                q(&address),
                q(rng.pick(DISTRICTS)),
                1930 + rng.below(60),
                opt(notes),
            ));
            let p = phone(i);
            phones.push(format!(
                "({}, 0, {}, {})",
                q(&id),
                q(&p),
                q(&appeals::phone_key(&p))
            ));
            ids.push(id);
        }
        pool.execute(
            format!(
                "INSERT INTO citizens (id, name, address, district, birth_year, notes, \
                 created_at, updated_at) VALUES {}",
                rows.join(", ")
            )
            .as_str(),
        )
        .await?;
        pool.execute(
            format!(
                "INSERT INTO citizen_phones (citizen_id, position, phone, phone_key) VALUES {}",
                phones.join(", ")
            )
            .as_str(),
        )
        .await?;
    }
    let citizens_s = t0.elapsed().as_secs_f64();

    // a year of appeals, oldest first
    let t1 = Instant::now();
    let year = 365 * day_ms;
    for start in (0..appeals).step_by(1000) {
        let end = (start + 1000).min(appeals);
        let mut rows = Vec::with_capacity(end - start);
        for i in start..end {
            let arrived = now_ms - year + (i as i64 * year / appeals as i64);
            let (number, citizen) = if citizens > 0 && rng.chance(60) {
                let c = rng.below(citizens);
                (phone(c), Some(ids[c].clone()))
            } else {
                (format!("+79{:09}", 500_000_000 + rng.below(400_000)), None)
            };
            let r = rng.below(100);
            let op = format!("op{}", 1 + rng.below(50));
            let (outcome, answered, operator) = match r {
                0..=71 => ("answered", Some(arrived + 20_000), Some(op.clone())),
                72..=85 => ("abandoned", None, None),
                86..=92 => ("callback", None, None),
                _ => ("info_only", None, None),
            };
            let open = arrived > now_ms - 30 * day_ms || rng.chance(3);
            let status = if open {
                ["new", "in_progress", "forwarded", "pending"][rng.below(4)]
            } else {
                "done"
            };
            let service = rng.chance(50).then(|| rng.pick(SERVICES).to_owned());
            let due = service
                .as_ref()
                .map(|_| arrived + (1 + rng.below(14) as i64) * day_ms);
            let district = rng.pick(DISTRICTS);
            let address = rng
                .chance(40)
                .then(|| format!("{}, {}", rng.pick(STREETS), 1 + rng.below(150)));
            let notes = rng.chance(33).then(|| rng.pick(NOTES).to_owned());
            let resolution = (!open && rng.chance(40)).then(|| rng.pick(RESOLUTIONS).to_owned());
            let assignee = (open && service.is_some()).then(|| op.clone());
            let organisation = service.as_ref().map(|_| format!("kcson-{district}"));
            rows.push(format!(
                "({}, {}, '3758787', {}, {}, {}, {arrived}, {}, {}, 'general', 20, 120, {}, \
                 {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, 0, {arrived})",
                q(&uuid::Uuid::now_v7().to_string()),
                q(&format!("bench-{i}")),
                q(&number),
                q(&appeals::phone_key(&number)),
                opt(citizen),
                num(answered),
                arrived + 60_000,
                opt(operator),
                q(outcome),
                q(status),
                opt(notes),
                opt(address),
                opt(service.is_some().then(|| district.to_owned())),
                opt(service),
                opt(organisation),
                opt(assignee),
                num(due),
                opt(resolution),
            ));
        }
        pool.execute(
            format!(
                "INSERT INTO appeals (id, call_id, line, caller_number, caller_key, citizen_id, \
                 arrived_at, answered_at, ended_at, queue, wait_seconds, talk_seconds, operator, \
                 outcome, status, notes, address, district, service, organisation, assignee, \
                 due_at, resolution, last_seq, updated_at) VALUES {}",
                rows.join(", ")
            )
            .as_str(),
        )
        .await?;
    }
    let appeals_s = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    store.rebuild_missed().await?;
    let missed_s = t2.elapsed().as_secs_f64();
    Ok(serde_json::json!({ "citizens": citizens_s, "appeals": appeals_s, "missed": missed_s }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .ok_or("usage: cases_bench URL [APPEALS [CITIZENS]]")?;
    let appeals: usize = args.get(2).map_or(Ok(1_000_000), |s| s.parse())?;
    let citizens: usize = args.get(3).map_or(Ok(200_000), |s| s.parse())?;
    let store = Store::connect(url).await?;
    let pool = store.pool().clone();
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    let day_ms: i64 = 86_400_000;

    let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM appeals")
        .fetch_one(&pool)
        .await?;
    let fill_seconds = if existing > 0 {
        eprintln!("cases_bench: {existing} appeals already there: timing the reads only");
        serde_json::Value::Null
    } else {
        fill(&store, appeals, citizens, now_ms).await?
    };
    let count = |table: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&pool)
                .await
                .map(|n| usize::try_from(n).unwrap_or(0))
        }
    };
    let appeals = count("appeals").await?;
    let citizens = count("citizens").await?;
    // fresh statistics, as a database that has been running has them
    pool.execute("ANALYZE").await?;

    let first = Page {
        offset: 0,
        limit: 50,
    };
    let mut timings = serde_json::Map::new();
    macro_rules! time {
        ($name:expr, $e:expr) => {{
            let mut runs = Vec::new();
            let mut rows = 0usize;
            for _ in 0..7 {
                let t = Instant::now();
                rows = $e.await?;
                runs.push(t.elapsed());
            }
            let cold = runs[0];
            runs.sort();
            let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
            timings.insert(
                $name.to_owned(),
                serde_json::json!({ "first_ms": ms(cold), "median_ms": ms(runs[3]), "rows": rows }),
            );
        }};
    }
    let text = |t: &str, cards: bool| SearchFilter {
        text: Some(t.to_owned()),
        text_in_citizens: cards,
        ..SearchFilter::default()
    };
    let card = |t: &str| CitizenFilter {
        text: Some(t.to_owned()),
        ..CitizenFilter::default()
    };
    time!("search appeals «продукт» (page)", async {
        Ok::<_, appeals::Error>(store.search(&text("продукт", false), first).await?.len())
    });
    time!("search appeals «продукт» (count)", async {
        total(&store, &text("продукт", false)).await
    });
    time!(
        "search appeals and cards «иванова мария» (page)",
        async {
            Ok::<_, appeals::Error>(
                store
                    .search(&text("иванова мария", true), first)
                    .await?
                    .len(),
            )
        }
    );
    time!(
        "search appeals and cards «иванова мария» (count)",
        async { total(&store, &text("иванова мария", true)).await }
    );
    time!("search appeals «плахотн слух» (page)", async {
        Ok::<_, appeals::Error>(
            store
                .search(&text("плахотн слух", false), first)
                .await?
                .len(),
        )
    });
    time!("search appeals «продукт» in progress (page)", async {
        let f = SearchFilter {
            status: Some(appeals::Status::InProgress),
            ..text("продукт", false)
        };
        Ok::<_, appeals::Error>(store.search(&f, first).await?.len())
    });
    time!("search appeals «продукт» answered by op7 (page)", async {
        let f = SearchFilter {
            operator: Some("op7".to_owned()),
            ..text("продукт", false)
        };
        Ok::<_, appeals::Error>(store.search(&f, first).await?.len())
    });
    time!(
        "search appeals «продукт» answered by op7 (count)",
        async {
            let f = SearchFilter {
                operator: Some("op7".to_owned()),
                ..text("продукт", false)
            };
            total(&store, &f).await
        }
    );
    time!("search appeals and cards «продукт» (page)", async {
        Ok::<_, appeals::Error>(store.search(&text("продукт", true), first).await?.len())
    });
    time!("search appeals and cards «продукт» (count)", async {
        total(&store, &text("продукт", true)).await
    });
    time!("search citizens «иван» (page)", async {
        Ok::<_, appeals::Error>(store.search_citizens(&card("иван"), first).await?.len())
    });
    time!("search citizens «семенова гал» (page)", async {
        Ok::<_, appeals::Error>(
            store
                .search_citizens(&card("семенова гал"), first)
                .await?
                .len(),
        )
    });
    time!("worklist mine", async {
        Ok::<_, appeals::Error>(
            store
                .worklist(Worklist::Mine("op7"), now, first)
                .await?
                .len(),
        )
    });
    time!("worklist overdue", async {
        Ok::<_, appeals::Error>(store.worklist(Worklist::Overdue, now, first).await?.len())
    });
    let today = Utc
        .timestamp_millis_opt(now_ms - now_ms % day_ms)
        .single()
        .ok_or("time")?;
    time!("worklist due-today", async {
        Ok::<_, appeals::Error>(
            store
                .worklist(
                    Worklist::Due {
                        from: today,
                        to: today + chrono::Duration::days(1),
                        assignee: None,
                    },
                    now,
                    first,
                )
                .await?
                .len(),
        )
    });
    time!("worklist missed", async {
        Ok::<_, appeals::Error>(store.missed(first).await?.len())
    });
    let missed_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM missed_callers")
        .fetch_one(&pool)
        .await?;
    let out = serde_json::json!({
        "backend": format!("{:?}", store.backend()).to_lowercase(),
        "appeals": appeals,
        "citizens": citizens,
        "fill_seconds": fill_seconds,
        "missed_callers": missed_rows,
        "timings": timings,
    });
    println!("{out}");
    store.close().await;
    Ok(())
}
