//! Error pages, in one place: a status and a message in Russian on the base layout.

use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// `error.html`.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

/// A page saying what went wrong.
pub fn page(status: StatusCode, title: &str, message: &str) -> Response {
    html(status, ErrorPage { title, message }.render())
}

/// Renders a template's result; a template that fails to render is a bug: 500 with text.
pub fn html(status: StatusCode, rendered: Result<String, askama::Error>) -> Response {
    match rendered {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "page not rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Внутренняя ошибка страницы",
            )
                .into_response()
        }
    }
}

/// 503 while the database cannot be reached.
pub fn no_database() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "База данных недоступна",
        "Сервер не может связаться с базой данных. Попробуйте войти через минуту.",
    )
}

/// Nobody is signed in: to the login page.
pub fn to_login() -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, "/"), (header::CACHE_CONTROL, "no-store")],
    )
        .into_response()
}

/// 403: the signed-in person's role may not open this page.
pub fn no_access() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Нет доступа",
        "У вашей учётной записи нет доступа к этой странице. Вернитесь на главную — там \
         открывается ваше рабочее место; если доступ нужен, обратитесь к администратору.",
    )
}

/// An HTML fragment saying what went wrong (for parts a page loads by itself).
pub fn fragment(status: StatusCode, message: &str) -> Response {
    let mut text = String::from("<p class=\"alert\" role=\"alert\">");
    for ch in message.chars() {
        match ch {
            '<' => text.push_str("&lt;"),
            '>' => text.push_str("&gt;"),
            '&' => text.push_str("&amp;"),
            c => text.push(c),
        }
    }
    text.push_str("</p>");
    html(status, Ok(text))
}
