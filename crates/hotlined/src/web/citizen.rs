//! The citizen card as the pages show it: `GET /citizens/{id}` (the whole card with the
//! citizen's appeals, newest first) and the card the desk's screen pop shows (the citizen
//! linked to the appeal, else the one card that has the caller's number).

use appeals::{Citizen, Page, Store};
use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{NaiveDate, Utc};
use uuid::Uuid;

use super::chrome::{status_label, Chrome, Viewer};
use super::errors;
use crate::admin::AdminState;
use crate::directory::{Code, Directory};

/// One flag: its name, until when (empty: no end), whether that day has passed.
pub struct FlagView {
    pub id: String,
    pub name: String,
    pub until: String,
    pub expired: bool,
}

/// A card's fields with the directory's names.
pub struct CardView {
    pub id: String,
    pub name: String,
    pub phones: Vec<String>,
    pub address: String,
    pub district: String,
    pub birth_year: String,
    pub categories: Vec<String>,
    pub flags: Vec<FlagView>,
    /// Who recorded the consent, and when (empty: none given).
    pub consent: String,
    pub notes: String,
}

impl CardView {
    /// The flags still in force.
    pub fn active_flags(&self) -> impl Iterator<Item = &FlagView> {
        self.flags.iter().filter(|f| !f.expired)
    }
}

fn code_name(list: &[Code], id: &str) -> String {
    list.iter()
        .find(|c| c.id == id)
        .map_or_else(|| id.to_owned(), |c| c.name.clone())
}

/// A card as shown, with names from the directory and `today` deciding which flags expired.
pub fn card_view(c: &Chrome, d: &Directory, x: &Citizen, today: NaiveDate) -> CardView {
    let f = &x.card;
    CardView {
        id: x.id.to_string(),
        name: f.name.clone(),
        phones: f.phones.clone(),
        address: f.address.clone().unwrap_or_default(),
        district: f.district.as_deref().map_or_else(String::new, |id| {
            d.district(id)
                .map_or_else(|| id.to_owned(), |x| x.name.clone())
        }),
        birth_year: f.birth_year.map(|y| y.to_string()).unwrap_or_default(),
        categories: f
            .categories
            .iter()
            .map(|id| code_name(&d.social_categories, id))
            .collect(),
        flags: f
            .flags
            .iter()
            .map(|fl| FlagView {
                id: fl.flag.clone(),
                name: code_name(&d.flags, &fl.flag),
                until: fl.until.map(super::show_day).unwrap_or_default(),
                expired: fl.until.is_some_and(|u| u < today),
            })
            .collect(),
        consent: f
            .consent
            .as_ref()
            .map(|k| format!("{}, {}", k.by, c.when(&k.at)))
            .unwrap_or_default(),
        notes: f.notes.clone().unwrap_or_default(),
    }
}

/// Today where the hotline is.
pub fn today(c: &Chrome) -> NaiveDate {
    Utc::now().with_timezone(&c.tz).date_naive()
}

/// The cards for a call: the citizen linked to it, else the cards that have its number
/// (at most five; one is the caller's card, more leave the operator to choose).
pub async fn for_call(
    store: &Store,
    linked: Option<Uuid>,
    number: &str,
) -> Result<Vec<Citizen>, appeals::Error> {
    if let Some(id) = linked {
        if let Some(x) = store.citizen(id).await? {
            return Ok(vec![x]);
        }
    }
    if number.chars().filter(char::is_ascii_digit).count() < 5 {
        return Ok(Vec::new());
    }
    store
        .find_citizens(
            None,
            Some(number),
            Page {
                offset: 0,
                limit: 5,
            },
        )
        .await
}

/// One of the citizen's appeals.
pub struct AppealRow {
    pub id: String,
    pub when: String,
    pub status: String,
    pub notes: String,
}

/// `citizen.html`.
#[derive(Template)]
#[template(path = "citizen.html")]
struct CitizenPage {
    c: Chrome,
    x: CardView,
    appeals: Vec<AppealRow>,
}

fn not_found() -> Response {
    errors::page(
        StatusCode::NOT_FOUND,
        "Заявитель не найден",
        "Карточки заявителя с таким номером нет. Найдите обращение в реестре по номеру телефона.",
    )
}

/// `GET /citizens/{id}`: the citizen card.
pub async fn page(
    State(s): State<AdminState>,
    v: Viewer,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(id) = id.ok().and_then(|Path(p)| Uuid::parse_str(&p).ok()) else {
        return errors::page(
            StatusCode::BAD_REQUEST,
            "Неверный номер карточки",
            "Номер карточки заявителя — 36 знаков. Откройте карточку из обращения.",
        );
    };
    let c = v.chrome("registry", format!("/citizens/{id}"), s.reports.tz);
    let Ok(store) = s.store() else {
        return errors::no_database();
    };
    let x = match store.citizen(id).await {
        Ok(Some(x)) => x,
        Ok(None) => return not_found(),
        Err(_) => return errors::no_database(),
    };
    let Ok(list) = store
        .citizen_appeals(
            id,
            Page {
                offset: 0,
                limit: Page::MAX_LIMIT,
            },
        )
        .await
    else {
        return errors::no_database();
    };
    let appeals = list
        .iter()
        .map(|a| AppealRow {
            id: a.id.to_string(),
            when: c.when(&a.arrived_at),
            status: status_label(c.lang, a.status.as_str()),
            notes: a.notes.clone().unwrap_or_default(),
        })
        .collect();
    let d = s.directory.get();
    let page = CitizenPage {
        x: card_view(&c, &d, &x, today(&c)),
        appeals,
        c,
    };
    page.c.finish(errors::html(StatusCode::OK, page.render()))
}
