//! Names instead of ids on every page and in the reports: directory entries (districts,
//! organisations, services, dispositions, flags, categories), line names, queue titles and
//! the voice menu's words ([`crate::labels::Labels`]), operators' display names. An id no
//! longer configured is shown as it is (an old appeal keeps what it had).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::admin::AdminState;
use crate::directory::Directory;
use crate::labels::Labels;

use super::chrome::Lang;

/// The configuration's names as of one page's rendering.
#[derive(Default)]
pub struct Names {
    pub dir: Arc<Directory>,
    pub labels: Arc<Labels>,
    operators: HashMap<String, String>,
}

impl Names {
    /// The names in force now.
    pub fn of(s: &AdminState) -> Names {
        let contacts = s.stats.registered_contacts();
        let operators = s
            .operators
            .views(&contacts, Instant::now())
            .into_iter()
            .filter(|v| !v.name.is_empty())
            .map(|v| (v.id, v.name))
            .collect();
        Names {
            dir: s.directory.get(),
            labels: s.live.labels(),
            operators,
        }
    }

    /// The names of a loaded configuration (the `report` command, with no daemon to ask for
    /// the operator book: operators' names as the operators file gives them).
    pub fn of_config(c: &crate::config::Config) -> Names {
        Names {
            dir: c.directory.clone(),
            labels: Arc::new(Labels::of(c)),
            operators: HashMap::new(),
        }
        .with_operators(
            c.operators
                .iter()
                .filter(|o| !o.name.is_empty())
                .map(|o| (o.login.clone(), o.name.clone())),
        )
    }

    /// These operators' display names (login, name) besides.
    pub fn with_operators(mut self, names: impl IntoIterator<Item = (String, String)>) -> Self {
        self.operators.extend(names);
        self
    }

    pub fn line(&self, id: &str) -> String {
        self.labels.line(id)
    }

    pub fn category(&self, id: &str) -> String {
        self.labels.category(id)
    }

    pub fn organisation(&self, id: &str) -> String {
        self.dir
            .organisation(id)
            .map_or_else(|| id.to_owned(), |o| o.name.clone())
    }

    pub fn district(&self, id: &str) -> String {
        self.dir
            .district(id)
            .map_or_else(|| id.to_owned(), |d| d.name.clone())
    }

    pub fn service(&self, id: &str) -> String {
        self.dir
            .service(id)
            .map_or_else(|| id.to_owned(), |s| s.title.clone())
    }

    pub fn disposition(&self, id: &str) -> String {
        code(&self.dir.dispositions, id)
    }

    pub fn queue(&self, id: &str) -> String {
        self.labels.queue(id)
    }

    pub fn operator(&self, id: &str) -> String {
        self.operators
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_owned())
    }

    /// A stored `ivr_path` in words, joined for reading.
    pub fn ivr_path(&self, lang: Lang, path: &str) -> String {
        self.labels.stored_path(lang == Lang::En, path).join(" → ")
    }

    /// A case field's value as people read it (the directory's name for an id).
    pub fn value(&self, field: &str, value: &str) -> String {
        match field {
            "organisation" | "destination_org" => self.organisation(value),
            "district" => self.district(value),
            "service" => self.service(value),
            "disposition" => self.disposition(value),
            "queue" => self.queue(value),
            "category" => self.category(value),
            "line" => self.line(value),
            "operator" | "assignee" => self.operator(value),
            _ => value.to_owned(),
        }
    }
}

fn code(list: &[crate::directory::Code], id: &str) -> String {
    list.iter()
        .find(|c| c.id == id)
        .map_or_else(|| id.to_owned(), |c| c.name.clone())
}

/// A field's name on the timeline (the field's own id when it is not one we know).
pub fn field_label(lang: Lang, field: &str) -> String {
    let (ru, en) = match field {
        "citizen" | "citizen_id" => ("заявитель", "citizen"),
        "service" => ("услуга", "service"),
        "address" => ("адрес", "address"),
        "district" => ("район", "district"),
        "organisation" | "destination_org" => ("организация", "organisation"),
        "assignee" => ("исполнитель", "assignee"),
        "due_date" | "due" | "due_at" => ("срок", "due date"),
        "pending_until" | "pending_date" => ("отложено до", "pending until"),
        "disposition" => ("итог звонка", "disposition"),
        "resolution" => ("результат", "resolution"),
        "notes" | "note" | "text" | "comment" => ("текст", "text"),
        "status" => ("статус", "status"),
        "from" => ("было", "from"),
        "to" => ("стало", "to"),
        "operator" => ("оператор", "operator"),
        "queue" => ("очередь", "queue"),
        "target" => ("куда", "target"),
        "kind" => ("вид", "kind"),
        "reason" => ("причина", "reason"),
        "wait_seconds" => ("ожидание, с", "waited, s"),
        "talk_seconds" => ("разговор, с", "talk, s"),
        "operator_talk_seconds" => ("разговор до перевода, с", "talk before the transfer, s"),
        "in_call_seconds" => ("в звонке, с", "in the call, s"),
        "priority" => ("приоритет", "priority"),
        "category" => ("тема", "category"),
        "path" | "ivr_path" => ("путь в меню", "menu path"),
        "caller" | "number" => ("номер", "number"),
        "attempt" => ("попытка", "attempt"),
        "result" => ("результат", "result"),
        "line" => ("линия", "line"),
        "by" | "actor" => ("кто", "by"),
        "partner_ref" => ("номер у партнёра", "partner reference"),
        "partner" => ("партнёр", "partner"),
        "partner_appeal" => ("обращение у партнёра", "the partner's appeal"),
        "partner_actor" => ("кто у партнёра", "by, at the partner"),
        "at_partner" => ("когда у партнёра", "when, at the partner"),
        "trunk" => ("через транк", "via the trunk"),
        "call_id" => ("идентификатор звонка", "call id"),
        "step" => ("выбор", "choice"),
        "digit" => ("клавиша", "key"),
        "via" => ("способ", "via"),
        "reopened" => ("открыто снова", "reopened"),
        other => (other, other),
    };
    super::chrome::said(lang, ru, en)
}
