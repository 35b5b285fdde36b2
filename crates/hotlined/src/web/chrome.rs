//! What every workspace page shares: the language, the signed-in person, the navigation,
//! the live-connection indicator and the large-text switch (`layout.html`).

use appeals::Role;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use chrono::{DateTime, FixedOffset, Utc};
use cookie::Cookie;

use super::texts::{self, Texts};
use crate::admin::access::{Caller, Via};

/// The cookie that remembers `?lang=`.
pub const LANG_COOKIE: &str = "hotline_lang";

/// A page's language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Ru,
    En,
}

impl Lang {
    /// `?lang=` first (`en` or `ru`), then the cookie; Russian by default.
    pub fn of(headers: &HeaderMap, query: Option<&str>) -> (Lang, bool) {
        let asked = query.and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("lang="))
                .and_then(|v| match v {
                    "en" => Some(Lang::En),
                    "ru" => Some(Lang::Ru),
                    _ => None,
                })
        });
        if let Some(l) = asked {
            return (l, true);
        }
        let cookie = super::cookies::named(headers, LANG_COOKIE).map(|v| v == "en");
        (
            if cookie == Some(true) {
                Lang::En
            } else {
                Lang::Ru
            },
            false,
        )
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::Ru => &texts::RU,
            Lang::En => &texts::EN,
        }
    }
}

/// Who opened a page, and how: the guard's [`Caller`], the request's headers (language
/// cookie) and query (`?lang=`). Every page handler takes one.
pub struct Viewer {
    pub who: Caller,
    headers: HeaderMap,
    query: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // the guard puts the caller there for every `Rule::PageFor` route
        let who = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(super::errors::to_login)?;
        Ok(Viewer {
            who,
            headers: parts.headers.clone(),
            query: parts.uri.query().map(str::to_owned),
        })
    }
}

impl Viewer {
    /// The layout's data for `page` at `path`.
    pub fn chrome(&self, page: &'static str, path: impl Into<String>, tz: FixedOffset) -> Chrome {
        Chrome::new(
            &self.who,
            &self.headers,
            self.query.as_deref(),
            page,
            path,
            tz,
        )
    }

    /// The request's query string.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
}

/// An appeal id from a route's `{id}`.
pub fn appeal_id(
    id: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Option<appeals::AppealId> {
    id.ok().and_then(|axum::extract::Path(p)| p.parse().ok())
}

/// One navigation link.
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// The layout's data.
pub struct Chrome {
    pub lang: Lang,
    /// Remember the language asked for in `?lang=` (a `Set-Cookie` on the answer).
    pub remember_lang: bool,
    pub t: &'static Texts,
    /// Which page (`desk`, `board`, …), for the script.
    pub page: &'static str,
    pub path: String,
    pub user_id: String,
    pub display_name: String,
    pub role: Role,
    /// The session's CSRF token (empty for a bearer-token caller: read-only pages).
    pub csrf: String,
    /// Whether this page opens the live event stream.
    pub live: bool,
    pub nav: Vec<NavItem>,
    /// The texts the script shows, as JSON.
    pub script_texts: String,
    /// Where local times are shown at (`reports.timezone`).
    pub tz: FixedOffset,
}

impl Chrome {
    pub fn new(
        caller: &Caller,
        headers: &HeaderMap,
        query: Option<&str>,
        page: &'static str,
        path: impl Into<String>,
        tz: FixedOffset,
    ) -> Chrome {
        let (lang, remember_lang) = Lang::of(headers, query);
        let t = lang.texts();
        let csrf = match &caller.via {
            Via::Session { csrf } => csrf.clone(),
            _ => String::new(),
        };
        let mut nav = Vec::new();
        let mut link = |href, label| {
            nav.push(NavItem {
                href,
                label,
                current: href.trim_start_matches('/') == page,
            })
        };
        match caller.role {
            Role::Operator => {
                link("/desk", t.nav_desk);
                link("/registry", t.nav_registry);
            }
            Role::Supervisor | Role::Admin => {
                link("/board", t.nav_board);
                link("/desk", t.nav_desk);
                link("/registry", t.nav_registry);
                link("/reports", t.nav_reports);
                link("/org", t.nav_org);
            }
            Role::Organisation => link("/org", t.nav_org),
        }
        Chrome {
            lang,
            remember_lang,
            t,
            page,
            path: path.into(),
            user_id: caller.id.clone(),
            display_name: caller.display_name.clone(),
            role: caller.role,
            csrf,
            // the organisation role has no live events
            live: caller.role != Role::Organisation,
            nav,
            script_texts: texts::script_json(t),
            tz,
        }
    }

    /// The role id for the script.
    pub fn role_id(&self) -> &'static str {
        self.role.as_str()
    }

    /// A UTC instant as local `DD.MM.YYYY HH:MM`.
    pub fn when(&self, at: &DateTime<Utc>) -> String {
        at.with_timezone(&self.tz)
            .format("%d.%m.%Y %H:%M")
            .to_string()
    }

    /// A work state's name.
    pub fn state_label(&self, state: &str) -> &'static str {
        let t = self.t;
        match state {
            "available" => t.st_available,
            "ringing" => t.st_ringing,
            "on_call" => t.st_on_call,
            "wrap_up" => t.st_wrap_up,
            "paused" => t.st_paused,
            _ => t.st_logged_out,
        }
    }

    /// A pause reason's name (the reason as given when it is not one of ours).
    pub fn reason_label<'a>(&self, reason: &'a str) -> &'a str {
        match reason {
            "break" => self.t.reason_break,
            "paperwork" => self.t.reason_paperwork,
            "training" => self.t.reason_training,
            // the board's «Пауза»
            "supervisor" => self.t.reason_supervisor,
            other => other,
        }
    }

    /// Adds the language cookie to a page's answer when `?lang=` asked for one.
    pub fn finish(&self, mut r: Response) -> Response {
        if self.remember_lang {
            let c = Cookie::build((LANG_COOKIE, self.lang.code()))
                .path("/")
                .same_site(cookie::SameSite::Lax)
                .max_age(cookie::time::Duration::days(365))
                .build()
                .to_string();
            if let Ok(v) = HeaderValue::from_str(&c) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        r
    }
}

/// The Russian or the English of a word, in the page's language.
pub fn said(lang: Lang, ru: &str, en: &str) -> String {
    match lang {
        Lang::Ru => ru.to_owned(),
        Lang::En => en.to_owned(),
    }
}

/// Whether an appeal with this status still needs work.
pub fn is_open(status: &str) -> bool {
    !matches!(status, "resolved" | "done" | "declined")
}

/// A status's name on screen (the stored word when it is not one we know).
pub fn status_label(lang: Lang, status: &str) -> String {
    let (ru, en) = match status {
        "new" => ("новое", "new"),
        "in_progress" => ("в работе", "in progress"),
        "forwarded" => ("направлено", "forwarded"),
        "pending" => ("отложено", "pending"),
        "resolved" | "done" => ("выполнено", "done"),
        "declined" => ("отказано", "declined"),
        other => (other, other),
    };
    said(lang, ru, en)
}

/// An outcome's name on screen.
pub fn outcome_label(lang: Lang, outcome: &str) -> String {
    let (ru, en) = match outcome {
        "answered" => ("принят", "answered"),
        "abandoned" => ("потерян", "abandoned"),
        "callback" => ("обратный звонок", "callback"),
        "message" => ("сообщение", "message"),
        "transferred" => ("переведён", "transferred"),
        "info_only" => ("справка в меню", "information only"),
        "rejected" => ("отклонён", "rejected"),
        "" => ("идёт", "in progress"),
        other => (other, other),
    };
    said(lang, ru, en)
}

/// A timeline event's name on screen.
pub fn event_label(lang: Lang, kind: &str) -> String {
    let (ru, en) = match kind {
        "created" => ("звонок поступил", "call arrived"),
        "ivr_choice" => ("выбор в меню", "menu choice"),
        "entered_queue" => ("в очереди", "entered the queue"),
        "offered" => ("предложен оператору", "offered to an operator"),
        "no_answer" => ("оператор не ответил", "operator did not answer"),
        "answered" => ("оператор ответил", "operator answered"),
        "transferred" => ("переведён", "transferred"),
        "abandoned" => ("звонящий не дождался", "caller gave up"),
        "callback_requested" => ("заказан обратный звонок", "callback booked"),
        "callback_attempt" => ("попытка обратного звонка", "callback attempt"),
        "message_recorded" => ("оставлено сообщение", "message left"),
        "recording_started" => ("запись начата", "recording started"),
        "ended" => ("звонок завершён", "call ended"),
        "status_changed" => ("статус изменён", "status changed"),
        "note_added" => ("комментарий", "note"),
        "destination_set" => ("назначена организация", "organisation set"),
        "forwarded" => ("передано партнёру", "forwarded to the partner"),
        "partner_update" => ("ответ партнёра", "partner update"),
        "case_updated" => ("изменено обращение", "appeal changed"),
        "citizen_linked" => ("найден заявитель", "citizen linked"),
        other => (other, other),
    };
    said(lang, ru, en)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_from_query_then_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::of(&h, None), (Lang::Ru, false));
        assert_eq!(Lang::of(&h, Some("a=1&lang=en")), (Lang::En, true));
        h.insert(header::COOKIE, HeaderValue::from_static("hotline_lang=en"));
        assert_eq!(Lang::of(&h, None), (Lang::En, false));
        assert_eq!(Lang::of(&h, Some("lang=ru")), (Lang::Ru, true));
        assert_eq!(Lang::of(&h, Some("lang=xx")), (Lang::En, false));
    }
}
