//! The pages of the admin address (askama templates in `crates/hotlined/templates`, every
//! asset embedded in the binary), in Russian, readable and usable with the keyboard. The
//! shape the browser workspace grows on: one module per page (`login.rs`), with cookies,
//! CSRF and error pages each in one place (`cookies.rs`, `csrf.rs`, `errors.rs`).
//!
//! - `GET /` — the login page, or (with a live session) the landing page: who is logged
//!   in, their role, a logout button.
//! - `POST /login` (form `login`, `password`) — a session cookie and a redirect to `/`; a
//!   refusal is 401 with the page and a message, a lock 429.
//! - `POST /logout` (form `csrf`) — ends the session.
//! - `GET /assets/style.css`, `GET /assets/app.js` — the one stylesheet and the one script.
//!
//! The workspace (issue 13), each page a module with its template, the routes' lines in
//! `admin::permissions::TABLE` as `Rule::PageFor` (nobody signed in: to the login page;
//! another role: a 403 page in Russian): `desk.rs` (`/desk`, `/desk/pop/{appeal}`),
//! `board.rs` (`/board`), `registry.rs` (`/registry`, `/appeals/{id}`, `/citizens/{id}`),
//! `reports.rs` (`/reports`), `org.rs` (`/org`, `POST /org/{id}`). `chrome.rs` is what
//! every page shares (`layout.html`: language, navigation, live status, large text);
//! `texts.rs` the words in Russian and English.

pub mod board;
pub mod chrome;
pub mod citizen;
pub mod cookies;
pub mod csrf;
pub mod desk;
pub mod errors;
pub mod login;
pub mod names;
pub mod org;
pub mod registry;
pub mod reports;
pub mod texts;

use appeals::Role;
use axum::http::header;
use axum::response::IntoResponse;

/// The stylesheet, embedded.
const STYLE: &str = include_str!("../../assets/style.css");
/// The pages' one script, embedded.
const SCRIPT: &str = include_str!("../../assets/app.js");

/// `GET /assets/app.js`.
pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        SCRIPT,
    )
}

/// A date typed into a page's date field: as people write it (дд.мм.гггг), or ISO
/// (`гггг-мм-дд`, as links and the API give it). The pages' date fields are text inputs with
/// the дд.мм.гггг placeholder, not the browser's date input (which follows the browser's
/// locale: US order in an en-US browser).
pub fn parse_day(v: &str) -> Option<chrono::NaiveDate> {
    let v = v.trim();
    chrono::NaiveDate::parse_from_str(v, "%d.%m.%Y")
        .or_else(|_| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d"))
        .ok()
}

/// A date as the pages show it (their date fields, the citizen card's flags, the report's
/// period): дд.мм.гггг.
pub fn show_day(d: chrono::NaiveDate) -> String {
    d.format("%d.%m.%Y").to_string()
}

/// Where a role starts: operator → the desk, supervisor and admin → the board,
/// organisation → its applications.
pub fn home_of(role: Role) -> &'static str {
    match role {
        Role::Operator => "/desk",
        Role::Supervisor | Role::Admin => "/board",
        Role::Organisation => "/org",
    }
}

/// `GET /assets/style.css`.
pub async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE,
    )
}
