//! What people read instead of configuration ids: line names (`lines.toml` `name`), queue
//! titles (`queues.toml` `title`) and a caller's steps through the voice menu in words
//! (`ivr_path` `greeting>main>main:1>…` → «1 — Меры социальной поддержки…»). Built from the
//! configuration at start and at every reload ([`crate::live::Live::reconfigure`]); the pages
//! and the live events read it. An id no longer in the configuration is shown as it is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ivr::{Menu, Node};

/// Line names, queue titles and the lines' voice menus.
#[derive(Debug, Default)]
pub struct Labels {
    lines: BTreeMap<String, String>,
    queues: BTreeMap<String, String>,
    menus: Vec<Arc<Menu>>,
    /// Queues whose calls need a disposition before the operator's next call
    /// (`disposition_required`, see `crate::disposition_hold`).
    disposition_required: BTreeSet<String>,
}

/// How far a choice's target is followed (through `set`, `goto`, `play`, …) to the queue or
/// the action it leads to.
const FOLLOW: usize = 12;

impl Labels {
    /// From (queue id, title) pairs and the voice menus.
    pub fn new(queues: impl IntoIterator<Item = (String, String)>, menus: Vec<Arc<Menu>>) -> Self {
        Labels {
            lines: BTreeMap::new(),
            queues: queues
                .into_iter()
                .filter(|(_, t)| !t.trim().is_empty())
                .collect(),
            menus,
            disposition_required: BTreeSet::new(),
        }
    }

    /// The lines' names, from (line id, name) pairs.
    pub fn with_lines(mut self, lines: impl IntoIterator<Item = (String, String)>) -> Self {
        self.lines = lines
            .into_iter()
            .filter(|(_, n)| !n.trim().is_empty())
            .collect();
        self
    }

    /// The configured lines that have a name: (id, name), by id.
    pub fn lines(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().map(|(id, n)| (id.as_str(), n.as_str()))
    }

    /// A line's name, or its id when it has none (or is no longer configured).
    pub fn line(&self, id: &str) -> String {
        self.lines.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }

    /// These queues need a disposition before the operator's next call.
    pub fn with_disposition_required(mut self, queues: impl IntoIterator<Item = String>) -> Self {
        self.disposition_required = queues.into_iter().collect();
        self
    }

    /// The queues that need a disposition before the operator's next call.
    pub fn disposition_queues(&self) -> impl Iterator<Item = &str> {
        self.disposition_required.iter().map(String::as_str)
    }

    /// Whether a call from `queue` needs a disposition before the operator's next one.
    pub fn disposition_required(&self, queue: &str) -> bool {
        self.disposition_required.contains(queue)
    }

    /// From the loaded configuration.
    pub fn of(c: &crate::config::Config) -> Self {
        Labels::new(
            c.queues.iter().map(|q| (q.name.clone(), q.title.clone())),
            c.menus.values().cloned().collect(),
        )
        .with_lines(c.lines.iter().map(|l| (l.id.clone(), l.name.clone())))
        .with_disposition_required(
            c.queues
                .iter()
                .filter(|q| q.disposition_required())
                .map(|q| q.name.clone()),
        )
    }

    /// A queue's title, or its id when it has none (or is no longer configured).
    pub fn queue(&self, id: &str) -> String {
        self.queues
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_owned())
    }

    /// A category the menus set (`[[set]] category`), in words: the title of the queue that
    /// node leads to; the id when no menu sets it or it leads to no queue.
    pub fn category(&self, id: &str) -> String {
        self.menus
            .iter()
            .find_map(|m| {
                m.nodes().iter().find_map(|(node, n)| match n {
                    Node::Set(s) if s.category.as_deref() == Some(id) => {
                        self.lead_to(false, m, node).filter(|_| {
                            // only a queue's title names a category
                            matches!(self.final_node(m, node), Some(Node::Queue(_)))
                        })
                    }
                    _ => None,
                })
            })
            .unwrap_or_else(|| id.to_owned())
    }

    /// The node a chain of `set`/`goto`/`play`/`schedule` ends at.
    fn final_node<'m>(&self, m: &'m Menu, mut id: &'m str) -> Option<&'m Node> {
        for _ in 0..FOLLOW {
            match m.node(id)? {
                Node::Set(s) => id = &s.next,
                Node::Goto(to) => id = to,
                Node::Play(p) => id = &p.next,
                Node::Schedule(s) => id = &s.open,
                other => return Some(other),
            }
        }
        None
    }

    /// The caller's choices in words, one entry per key pressed or menu event; steps that
    /// only name the node entered (greetings, menus) say nothing and are left out.
    pub fn path(&self, en: bool, path: &[String]) -> Vec<String> {
        path.iter().filter_map(|s| self.step(en, s)).collect()
    }

    /// A stored `ivr_path` (`>`-separated) in words.
    pub fn stored_path(&self, en: bool, path: &str) -> Vec<String> {
        let steps: Vec<String> = path
            .split('>')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        self.path(en, &steps)
    }

    fn menu_node(&self, id: &str) -> Option<(&Menu, &Node)> {
        self.menus
            .iter()
            .find_map(|m| m.node(id).map(|n| (m.as_ref(), n)))
    }

    fn step(&self, en: bool, step: &str) -> Option<String> {
        let (node, what) = step.split_once(':')?;
        let w = |ru: &str, e: &str| if en { e.to_owned() } else { ru.to_owned() };
        let found = self.menu_node(node);
        match what {
            "timeout" => Some(w("не выбрал", "no key")),
            "no more tries" => Some(w(
                "к оператору после попыток",
                "to an operator after retries",
            )),
            "*" => Some(w("* — повтор меню", "* — menu again")),
            "too short" => Some(w("введено не всё", "too few digits")),
            "failed" => Some(w("перевод не удался", "transfer failed")),
            "entered" => Some(w("ввёл номер", "entered digits")),
            "open" => Some(w("в рабочее время", "within opening hours")),
            "closed" => Some(w("в нерабочее время", "outside opening hours")),
            other if other.ends_with(" invalid") => {
                let key = other.trim_end_matches(" invalid");
                Some(if en {
                    format!("{key} — not a choice")
                } else {
                    format!("{key} — нет такого пункта")
                })
            }
            key => {
                let target = match found {
                    Some((m, Node::Menu(menu))) => {
                        let target = key
                            .chars()
                            .next()
                            .filter(|_| key.chars().count() == 1)
                            .and_then(|k| menu.choices.get(&k))
                            .map(String::as_str)
                            .or_else(|| {
                                (key == "0" && menu.zero).then_some(menu.operator.as_str())
                            });
                        target.and_then(|t| self.lead_to(en, m, t))
                    }
                    _ => None,
                };
                Some(match target {
                    Some(t) => format!("{key} — {t}"),
                    None => key.to_owned(),
                })
            }
        }
    }

    /// Where a choice leads, in words: the queue's title, or the action.
    fn lead_to<'m>(&self, en: bool, m: &'m Menu, mut id: &'m str) -> Option<String> {
        let w = |ru: &str, e: &str| Some(if en { e.to_owned() } else { ru.to_owned() });
        for _ in 0..FOLLOW {
            match m.node(id)? {
                Node::Queue(q) => return Some(self.queue(&q.queue)),
                Node::Set(s) => id = &s.next,
                Node::Goto(to) => id = to,
                Node::Play(p) => id = &p.next,
                Node::Schedule(s) => id = &s.open,
                Node::Menu(_) => return w("меню", "a menu"),
                Node::Collect(_) => return w("ввод цифр", "digits"),
                Node::Transfer(_) => return w("перевод", "transfer"),
                Node::Message(_) => return w("сообщение", "a message"),
                Node::Callback(_) => return w("обратный звонок", "a callback"),
                Node::Hangup(_) => return w("справка", "information"),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> crate::config::Config {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/hotline.toml");
        crate::config::Config::load_with_env(&path, std::iter::empty())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The shipped city menu: pressing 1 reads as the benefits queue's title; entering nodes
    /// says nothing; 0, a wrong key and a timeout are words; a queue no longer configured
    /// shows its id; the queues requiring a disposition are the configured ones.
    #[test]
    fn the_menu_path_reads_as_the_callers_choices() {
        let c = shipped();
        let l = Labels::of(&c);
        let benefits = c
            .queues
            .iter()
            .find(|q| q.name == "benefits")
            .map(|q| q.title.clone())
            .unwrap();
        assert!(!benefits.is_empty());
        assert_eq!(
            l.stored_path(false, "greeting>main>main:1>benefits>queue-benefits"),
            vec![format!("1 — {benefits}")]
        );
        let words = l.stored_path(false, "greeting>main>main:7 invalid>main:timeout>main:0");
        assert_eq!(words[0], "7 — нет такого пункта");
        assert_eq!(words[1], "не выбрал");
        assert!(words[2].starts_with("0 — "), "{words:?}");
        assert_eq!(
            l.stored_path(true, "main:timeout"),
            vec!["no key".to_owned()]
        );
        assert_eq!(l.queue("benefits"), benefits);
        assert_eq!(l.category("benefits"), benefits);
        assert_eq!(l.category("no-such-category"), "no-such-category");
        assert_eq!(l.queue("gone-queue"), "gone-queue");
        assert!(!l.disposition_required("gone-queue"));
        let l =
            Labels::new(Vec::new(), Vec::new()).with_disposition_required(["benefits".to_owned()]);
        assert!(l.disposition_required("benefits"));
        // without the menus a choice is its key
        assert_eq!(l.stored_path(false, "main:1"), vec!["1".to_owned()]);
    }
}
