//! The login page, the way from `/` to the role's home, and logout.
//!
//! Throttling: every refused login counts against the login as typed (whether or not such
//! an account exists, so the answer never tells) and against the source address; at
//! `admin.lockout_failures` (account) or `admin.address_lockout_failures` (address) the key
//! is locked for `admin.lockout_minutes`, and while locked even the right password is
//! refused with the lock message. A login that does not exist is checked against a dummy
//! hash, so it takes as long as a wrong password.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::{cookies, csrf, errors};
use crate::accounts::{self, MAX_LOGIN, MAX_PASSWORD};
use crate::admin::AdminState;

/// `login.html`.
#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    login: &'a str,
    error: Option<&'a str>,
}

const WRONG: &str = "Неверное имя пользователя или пароль.";
/// A login while no account exists at all.
const NO_ACCOUNTS: &str = "Учётных записей пока нет: при первом запуске они создаются за \
     несколько секунд — повторите вход. Если это сообщение не уходит, создайте администратора: \
     hotlined user add <имя> --role admin.";

fn login_page(status: StatusCode, login: &str, error: Option<&str>) -> Response {
    errors::html(status, LoginPage { login, error }.render())
}

fn locked_message(minutes: u32) -> String {
    format!(
        "Слишком много неудачных попыток входа. Вход временно заблокирован на {minutes} мин. \
         Попробуйте позже или обратитесь к администратору."
    )
}

/// `GET /`: with a live session, 303 to the role's home ([`super::home_of`]); the login
/// page otherwise.
pub async fn page(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    match s.session_of(&headers).await {
        Ok(Some((_, session))) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, super::home_of(session.user.role)),
                (header::CACHE_CONTROL, "no-store"),
            ],
        )
            .into_response(),
        Ok(None) => login_page(StatusCode::OK, "", None),
        Err(_) => errors::no_database(),
    }
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    login: String,
    password: String,
}

fn see_other(to: &'static str, cookie: header::HeaderValue) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, header::HeaderValue::from_static(to))],
        [(header::SET_COOKIE, cookie)],
    )
        .into_response()
}

/// `POST /login`.
pub async fn login(
    State(s): State<AdminState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if !csrf::same_origin(&headers) {
        return errors::page(
            StatusCode::FORBIDDEN,
            "Запрос отклонён",
            "Форма входа отправлена с другого сайта.",
        );
    }
    let Ok(Form(form)) = form else {
        return login_page(
            StatusCode::BAD_REQUEST,
            "",
            Some("Заполните поля «Имя пользователя» и «Пароль»."),
        );
    };
    let typed = form.login.trim();
    if typed.chars().count() > MAX_LOGIN {
        return login_page(
            StatusCode::BAD_REQUEST,
            "",
            Some("Поле «Имя пользователя» слишком длинное."),
        );
    }
    if form.password.chars().count() > MAX_PASSWORD {
        return login_page(
            StatusCode::BAD_REQUEST,
            typed,
            Some("Поле «Пароль» слишком длинное."),
        );
    }
    if typed.is_empty() || form.password.is_empty() {
        return login_page(
            StatusCode::BAD_REQUEST,
            typed,
            Some("Заполните поля «Имя пользователя» и «Пароль»."),
        );
    }
    let Ok(store) = s.store() else {
        return errors::no_database();
    };
    let address = peer.map(|Extension(ConnectInfo(a))| a.ip().to_string());
    let login_key = format!("login:{}", typed.to_lowercase());
    let address_key = format!("address:{}", address.as_deref().unwrap_or("unknown"));
    let now = Utc::now();
    let audit = |action: &str, reason: &str| appeals::AuditEntry {
        at: Utc::now(),
        actor: typed.to_owned(),
        role: None,
        address: address.clone(),
        action: action.to_owned(),
        target: Some(typed.to_owned()),
        details: json!({ "reason": reason }),
    };
    let minutes = s.access.lockout_minutes;
    match store.locked_until(&[&login_key, &address_key], now).await {
        Ok(None) => {}
        Ok(Some(_)) => {
            s.audit(audit("login_refused", "locked")).await;
            return login_page(
                StatusCode::TOO_MANY_REQUESTS,
                typed,
                Some(&locked_message(minutes)),
            );
        }
        Err(_) => return errors::no_database(),
    }
    let found = match store.user_with_hash(typed).await {
        Ok(f) => f.filter(|(u, _)| !u.disabled),
        Err(_) => return errors::no_database(),
    };
    let hash = found
        .as_ref()
        .map_or_else(|| accounts::dummy_hash().to_owned(), |(_, h)| h.clone());
    let password = form.password;
    let matches = tokio::task::spawn_blocking(move || accounts::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let user = match (matches, found) {
        (true, Some((user, _))) => user,
        // no account at all yet (a first start still hashing its demo accounts): not a
        // wrong password, and nothing toward a lock-out
        _ if store.user_counts().await.is_ok_and(|(users, _)| users == 0) => {
            s.audit(audit("login_refused", "no accounts yet")).await;
            return login_page(StatusCode::SERVICE_UNAVAILABLE, typed, Some(NO_ACCOUNTS));
        }
        _ => {
            let lock = chrono::Duration::minutes(i64::from(minutes));
            let a = store
                .login_failed(&login_key, now, s.access.lockout_failures, lock)
                .await;
            let b = store
                .login_failed(&address_key, now, s.access.address_lockout_failures, lock)
                .await;
            let locked = [&a, &b]
                .iter()
                .any(|r| r.as_ref().is_ok_and(|t| t.locked_until.is_some()));
            s.audit(audit(
                "login_refused",
                if locked {
                    "wrong login or password; now locked"
                } else {
                    "wrong login or password"
                },
            ))
            .await;
            return if locked {
                login_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    typed,
                    Some(&locked_message(minutes)),
                )
            } else {
                login_page(StatusCode::UNAUTHORIZED, typed, Some(WRONG))
            };
        }
    };
    let session = accounts::random_secret();
    let csrf_token = accounts::random_secret();
    let made = async {
        store.login_succeeded(&login_key).await?;
        store
            .create_session(
                &accounts::secret_hash(&session),
                &user.id,
                &csrf_token,
                address.as_deref(),
                now,
            )
            .await
    }
    .await;
    if made.is_err() {
        return errors::no_database();
    }
    let mut ok = audit("login_ok", "password");
    ok.actor = user.id.clone();
    ok.role = Some(user.role.as_str().to_owned());
    ok.target = Some(user.id.clone());
    ok.details = json!({ "via": "password" });
    s.audit(ok).await;
    see_other("/", cookies::set_session(&session, s.tls))
}

/// The logout form.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: ends the session named by the cookie when the form repeats its CSRF
/// token (403 otherwise), and sends the browser to the login page.
pub async fn logout(
    State(s): State<AdminState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let session = match s.session_of(&headers).await {
        Ok(s) => s,
        Err(_) => return errors::no_database(),
    };
    let Some((id_hash, session)) = session else {
        return see_other("/", cookies::clear_session(s.tls));
    };
    let given = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if !csrf::form_token_matches(&session.csrf, &given) {
        return errors::page(
            StatusCode::FORBIDDEN,
            "Запрос отклонён",
            "Форма устарела или отправлена не с этой страницы. Обновите страницу и повторите.",
        );
    }
    let Ok(store) = s.store() else {
        return errors::no_database();
    };
    if store.end_session(&id_hash, Utc::now()).await.is_err() {
        return errors::no_database();
    }
    s.audit(appeals::AuditEntry {
        at: Utc::now(),
        actor: session.user.id.clone(),
        role: Some(session.user.role.as_str().to_owned()),
        address: peer.map(|Extension(ConnectInfo(a))| a.ip().to_string()),
        action: "logout".into(),
        target: Some(session.user.id.clone()),
        details: json!({}),
    })
    .await;
    see_other("/", cookies::clear_session(s.tls))
}
