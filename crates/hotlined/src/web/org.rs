//! `GET /org` — a territorial centre's view: the applications routed to the account's
//! organisation (the case's organisation), each with its comments; `POST /org/{id}` (form
//! `csrf`, `comment`, `action` = `comment`, `take` or `done`) adds a comment to the timeline,
//! takes a new application in work or marks it done — when the workflow allows it (`Store::set_status` checks
//! the move as the API's PATCH does): a refused move is a 422 page in Russian naming the
//! statuses allowed, and nothing is written, the comment neither. Supervisors and admins
//! see every routed application.

use appeals::{EventKind, Page, Role, SearchFilter, Status};
use askama::Template;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::json;

use super::chrome::{appeal_id, status_label, Chrome, Lang, Viewer};
use super::{csrf, errors};
use crate::admin::access::{Caller, Via};
use crate::admin::AdminState;

/// The longest comment.
const MAX_COMMENT: usize = 2000;

/// One application.
pub struct Application {
    pub id: String,
    pub when: String,
    pub caller: String,
    pub organisation: String,
    pub notes: String,
    pub status: String,
    /// «Взять в работу»: a new application (new → in progress).
    pub can_take: bool,
    /// «Отметить выполненной»: the workflow lets it become done ([`Status::can_become`]).
    pub can_close: bool,
}

/// `org.html`.
#[derive(Template)]
#[template(path = "org.html")]
struct OrgPage {
    c: Chrome,
    organisation: String,
    rows: Vec<Application>,
    message: Option<String>,
}

/// The organisation whose applications the caller sees; `None` = every organisation.
fn organisation_of(who: &Caller) -> Option<String> {
    match who.role {
        Role::Organisation => Some(who.organisation_id.clone().unwrap_or_default()),
        _ => None,
    }
}

/// Whether the appeal is routed to `org` (the case's organisation, as the API's
/// `may_see` has it), or to any organisation when `org` is `None`.
fn routed_to(a: &appeals::Appeal, org: Option<&str>) -> bool {
    match org {
        None => a.case.organisation.is_some() || a.destination_org.is_some(),
        Some(m) => !m.is_empty() && a.case.organisation.as_deref() == Some(m),
    }
}

/// How many recent appeals the view looks through for routed ones.
const LOOK_BACK: u32 = 1000;

/// `GET /org`.
pub async fn page(State(s): State<AdminState>, v: Viewer) -> Response {
    let c = v.chrome("org", "/org", s.reports.tz);
    let message = v
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("done=")))
        .map(|_| c.t.done_ok.to_owned());
    let Ok(store) = s.store() else {
        return errors::no_database();
    };
    let mine = organisation_of(&v.who);
    let filter = SearchFilter {
        organisation: mine.clone().filter(|m| !m.is_empty()),
        ..SearchFilter::default()
    };
    if mine.as_deref() == Some("") {
        // an organisation account without its organisation sees nothing
        return errors::no_access();
    }
    let list = match store
        .search(
            &filter,
            Page {
                offset: 0,
                limit: LOOK_BACK,
            },
        )
        .await
    {
        Ok(l) => l,
        Err(_) => return errors::no_database(),
    };
    let names = super::names::Names::of(&s);
    let rows = list
        .iter()
        .filter(|a| routed_to(a, mine.as_deref()))
        .map(|a| Application {
            id: a.id.to_string(),
            when: c.when(&a.arrived_at),
            caller: a.caller_number.clone(),
            organisation: a
                .case
                .organisation
                .as_deref()
                .or(a.destination_org.as_deref())
                .map(|o| names.organisation(o))
                .unwrap_or_default(),
            notes: a.notes.clone().unwrap_or_default(),
            status: status_label(c.lang, a.status.as_str()),
            can_take: a.status == Status::New,
            can_close: a.status.can_become(Status::Done),
        })
        .collect();
    let page = OrgPage {
        organisation: mine.map(|m| names.organisation(&m)).unwrap_or_default(),
        rows,
        message,
        c,
    };
    page.c.finish(errors::html(StatusCode::OK, page.render()))
}

/// The form of one application's row.
#[derive(Debug, Deserialize)]
pub struct RowForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    action: String,
}

/// `POST /org/{id}`.
pub async fn act(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<RowForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return errors::page(
            StatusCode::BAD_REQUEST,
            "Форма не принята",
            "Форма заполнена неверно. Вернитесь к списку заявок и повторите.",
        );
    };
    let csrf_ok = match &who.via {
        Via::Session { csrf } => csrf::form_token_matches(csrf, &form.csrf),
        _ => true,
    };
    if !csrf_ok {
        return errors::page(
            StatusCode::FORBIDDEN,
            "Запрос отклонён",
            "Форма устарела или отправлена не с этой страницы. Обновите страницу и повторите.",
        );
    }
    let Some(id) = appeal_id(id) else {
        return errors::page(
            StatusCode::BAD_REQUEST,
            "Неверный номер заявки",
            "Откройте заявку из списка и повторите.",
        );
    };
    let comment = form.comment.trim();
    if comment.chars().count() > MAX_COMMENT {
        return errors::page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Комментарий слишком длинный",
            "Поле «Комментарий»: не более 2000 знаков. Сократите текст и отправьте снова.",
        );
    }
    // the status the button asks for (none: a comment only)
    let to = match form.action.as_str() {
        "done" => Some(Status::Done),
        "take" => Some(Status::InProgress),
        "comment" if !comment.is_empty() => None,
        "comment" => {
            return errors::page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Комментарий пуст",
                "Поле «Комментарий»: напишите текст комментария и отправьте снова.",
            )
        }
        _ => {
            return errors::page(
                StatusCode::BAD_REQUEST,
                "Неизвестное действие",
                "Вернитесь к списку заявок и нажмите нужную кнопку.",
            )
        }
    };
    let Ok(store) = s.store() else {
        return errors::no_database();
    };
    let appeal = match store.get(id).await {
        Ok(Some(a)) => a.appeal,
        Ok(None) => {
            return errors::page(
                StatusCode::NOT_FOUND,
                "Заявка не найдена",
                "Такой заявки нет. Вернитесь к списку заявок.",
            )
        }
        Err(_) => return errors::no_database(),
    };
    let ours = routed_to(&appeal, organisation_of(&who).as_deref());
    if !ours {
        return errors::no_access();
    }
    // The status first: a move the workflow refuses writes nothing, the comment neither.
    let to = to.filter(|to| appeal.status != *to);
    if let Some(to) = to {
        let _one_at_a_time = s.patch_lock.lock().await;
        match store.set_status(id, to, &who.id).await {
            Ok(()) => {}
            Err(appeals::Error::Transition { from, to, .. }) => return refused(from, to),
            Err(_) => return errors::no_database(),
        }
        // the partner may have a message queued about it
        if let Some(link) = &s.partner {
            link.wake.notify_one();
        }
    }
    if !comment.is_empty() {
        s.writer.event_by(
            id,
            EventKind::NoteAdded,
            json!({ "comment": comment }),
            &who.id,
        );
    }
    s.audit(who.audit(
        match to {
            Some(Status::Done) => "application_done",
            Some(_) => "application_taken",
            None => "application_comment",
        },
        Some(id.to_string()),
        json!({}),
    ))
    .await;
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/org?done=1")]).into_response()
}

/// 422 for a status move the workflow refuses ([`Status::can_become`], checked by
/// `Store::set_status`): what the application is, what it may become, and that nothing
/// was written.
fn refused(from: Status, to: Status) -> Response {
    let label = |s: Status| format!("«{}»", status_label(Lang::Ru, s.as_str()));
    let next: Vec<String> = from.moves().map(label).collect();
    let hint = if from.can_become(Status::InProgress) && Status::InProgress.can_become(to) {
        " Сначала заявку должны взять в работу (статус «в работе»)."
    } else {
        ""
    };
    errors::page(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Статус не изменён",
        &format!(
            "Заявку в статусе {} нельзя перевести в статус {}: из этого статуса можно перейти \
             только в {}.{hint} Ничего не записано, комментарий тоже.",
            label(from),
            label(to),
            next.join(", ")
        ),
    )
}
