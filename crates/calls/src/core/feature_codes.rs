//! Operators' feature codes (issue 5 item 1): an operator's softphone dials `*1` to log in,
//! `*2` to log out, `*3` to pause — optionally followed by a reason's digits, `*31` = break —
//! and `*4` to resume (the codes and reasons come from `[operators]` in `hotline.toml`).
//!
//! This file: the codes as configured ([`FeatureCodes`], [`FeaturePrompts`]) and
//! [`AwaitingBook`], the part that holds the feature-code calls waiting for the operator
//! book's verdict (by ticket). The router's side (the INVITE, the book's answer, the
//! confirmation call) is `feature_code_calls.rs`.

use std::collections::HashMap;

use media::prompts::PromptName;
use media::sdp::Negotiated;
use sip::dialog::Dialog;
use sip::transaction::TxKey;
use sip::{Peer, Request};

use super::OperatorCommand;

/// A feature-code call waiting for the operator book's verdict: everything its answer needs
/// (a value handed between the router and [`AwaitingBook`], which keeps it by ticket).
pub(super) struct Waiting {
    pub tx: TxKey,
    pub peer: Peer,
    pub local: std::net::SocketAddr,
    pub req: Request,
    pub call_id: String,
    pub dialog: Dialog,
    pub neg: Option<Negotiated>,
    pub ports: u16,
    pub span: tracing::Span,
    pub operator: String,
    pub cmd: OperatorCommand,
}

/// Feature-code calls waiting for the book, by the ticket of their [`BookRequest`] (a field
/// of `Core`).
#[derive(Default)]
pub(super) struct AwaitingBook {
    waiting: HashMap<u64, Waiting>,
    next: u64,
}

impl AwaitingBook {
    /// Keeps `w` until its answer; the ticket the request carries.
    pub(super) fn hold(&mut self, w: Waiting) -> u64 {
        self.next += 1;
        self.waiting.insert(self.next, w);
        self.next
    }

    /// The call the answer with `ticket` is for (`None`: answered already, or never asked).
    pub(super) fn take(&mut self, ticket: u64) -> Option<Waiting> {
        self.waiting.remove(&ticket)
    }
}

/// The codes operators dial, as plain values (the daemon reads them from `hotline.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureCodes {
    /// Log in (`*1`).
    pub login: String,
    /// Log out (`*2`).
    pub logout: String,
    /// Pause (`*3`); the digits dialled after it name a reason of `pause_reasons`.
    pub pause: String,
    /// Resume taking calls (`*4`).
    pub unpause: String,
    /// Digits after the pause code and the reason they stand for (`("1", "break")`).
    pub pause_reasons: Vec<(String, String)>,
    /// What the operator hears after a code.
    pub prompts: FeaturePrompts,
}

/// The confirmation prompts (names in [`crate::Settings::prompts`]); a missing one leaves
/// the call silent until our BYE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeaturePrompts {
    /// «Вы вошли в систему».
    pub logged_in: Option<PromptName>,
    /// «Вы вышли из системы».
    pub logged_out: Option<PromptName>,
    /// «Пауза».
    pub paused: Option<PromptName>,
    /// «Пауза снята».
    pub unpaused: Option<PromptName>,
    /// «Команда не выполнена»: the command did not apply (a pause while logged out…).
    pub refused: Option<PromptName>,
}

impl Default for FeatureCodes {
    /// `*1` login, `*2` logout, `*3` pause, `*4` unpause; no pause reasons, no prompts.
    fn default() -> Self {
        FeatureCodes {
            login: "*1".into(),
            logout: "*2".into(),
            pause: "*3".into(),
            unpause: "*4".into(),
            pause_reasons: Vec::new(),
            prompts: FeaturePrompts::default(),
        }
    }
}

impl FeatureCodes {
    /// Whether a dialled Request-URI user is for the feature codes rather than a line (lines
    /// are numbers; every code starts with `*`).
    pub fn is_code(dialled: &str) -> bool {
        dialled.starts_with('*')
    }

    /// The command `dialled` asks for; `None` for an unknown code or pause reason. A login
    /// from a phone names no queues: the operator works in every queue of their skills.
    pub fn parse(&self, dialled: &str) -> Option<OperatorCommand> {
        if dialled == self.login {
            return Some(OperatorCommand::Login { queues: Vec::new() });
        }
        if dialled == self.logout {
            return Some(OperatorCommand::Logout);
        }
        if dialled == self.unpause {
            return Some(OperatorCommand::Unpause);
        }
        let rest = dialled.strip_prefix(self.pause.as_str())?;
        if rest.is_empty() {
            return Some(OperatorCommand::Pause {
                reason: String::new(),
            });
        }
        self.pause_reasons
            .iter()
            .find(|(digits, _)| digits == rest)
            .map(|(_, reason)| OperatorCommand::Pause {
                reason: reason.clone(),
            })
    }

    /// The confirmation of a command carried out.
    pub(super) fn confirmation(&self, cmd: &OperatorCommand) -> Option<&PromptName> {
        match cmd {
            OperatorCommand::Login { .. } => self.prompts.logged_in.as_ref(),
            OperatorCommand::Logout => self.prompts.logged_out.as_ref(),
            OperatorCommand::Pause { .. } => self.prompts.paused.as_ref(),
            OperatorCommand::Unpause => self.prompts.unpaused.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes() -> FeatureCodes {
        FeatureCodes {
            pause_reasons: vec![
                ("1".into(), "break".into()),
                ("2".into(), "paperwork".into()),
            ],
            ..FeatureCodes::default()
        }
    }

    #[test]
    fn codes_and_pause_reasons_are_read() {
        let c = codes();
        assert_eq!(
            c.parse("*1"),
            Some(OperatorCommand::Login { queues: vec![] })
        );
        assert_eq!(c.parse("*2"), Some(OperatorCommand::Logout));
        assert_eq!(c.parse("*4"), Some(OperatorCommand::Unpause));
        assert_eq!(
            c.parse("*3"),
            Some(OperatorCommand::Pause {
                reason: String::new()
            })
        );
        assert_eq!(
            c.parse("*32"),
            Some(OperatorCommand::Pause {
                reason: "paperwork".into()
            })
        );
        // an unknown reason, an unknown code, a code with something after it
        assert_eq!(c.parse("*39"), None);
        assert_eq!(c.parse("*5"), None);
        assert_eq!(c.parse("*11"), None);
        assert_eq!(c.parse(""), None);
        assert!(FeatureCodes::is_code("*1"));
        assert!(!FeatureCodes::is_code("3758787"));
    }

    #[test]
    fn configured_codes_replace_the_defaults() {
        let c = FeatureCodes {
            login: "*71".into(),
            ..codes()
        };
        assert_eq!(c.parse("*1"), None);
        assert_eq!(
            c.parse("*71"),
            Some(OperatorCommand::Login { queues: vec![] })
        );
    }
}
