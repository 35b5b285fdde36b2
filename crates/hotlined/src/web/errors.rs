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
