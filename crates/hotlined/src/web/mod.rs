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
//! - `GET /assets/style.css` — the one stylesheet.

pub mod cookies;
pub mod csrf;
pub mod errors;
pub mod login;

use appeals::Role;
use axum::http::header;
use axum::response::IntoResponse;

/// The stylesheet, embedded.
const STYLE: &str = include_str!("../../assets/style.css");

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

/// A role's name on screen.
pub fn role_ru(role: Role) -> &'static str {
    match role {
        Role::Operator => "оператор",
        Role::Supervisor => "супервизор",
        Role::Admin => "администратор",
        Role::Organisation => "организация",
    }
}
