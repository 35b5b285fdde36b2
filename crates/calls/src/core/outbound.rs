//! Calls we place through the trunk: what a trunk leg is for ([`TrunkPurpose`]), the numbers
//! the trunk takes ([`dialable`]) and [`Dialling`], the part that owns the callers being
//! handed to an outside number (a menu's `transfer` node, an operator's REFER). The router's
//! side (placing the call, bridging on the answer, failures and hang-ups) is `trunk_calls.rs`.

use super::*;

/// What a trunk leg is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TrunkPurpose {
    /// The number of a booked callback, dialled while the operator waits on their leg.
    Callback { caller: CallerId },
    /// The number a caller's call (this Call-ID) is handed to.
    Transfer { call_id: String },
}

/// The operator who sent a REFER for a caller (the NOTIFYs go on their leg).
struct Referrer {
    operator: OperatorId,
    /// Their leg; empty once they hung up.
    leg: String,
    /// From the bridge to the REFER.
    talked: Duration,
}

/// A caller's call handed to a number.
struct Transfer {
    /// Our leg to the number.
    leg: String,
    number: String,
    referrer: Option<Referrer>,
    /// Bridged to the number.
    bridged: bool,
}

/// The callers being handed to a number (a field of [`Core`]); only this file touches them.
#[derive(Default)]
pub(super) struct Dialling {
    /// Calls being handed to a number, by Call-ID.
    transfers: HashMap<String, Transfer>,
}

impl Dialling {
    /// After a burst, the transfers' table gives its room back ([`sip::room`]).
    pub(super) fn give_back_room(&mut self) {
        sip::room::shrink_if_sparse(&mut self.transfers);
    }

    /// Whether a transfer of this call to a number is under way or done.
    pub(super) fn transferring(&self, call_id: &str) -> bool {
        self.transfers.contains_key(call_id)
    }

    /// `call_id`'s caller is being handed to `number` on our trunk leg `leg`; `referrer`: the
    /// operator whose REFER asked for it, their leg and how long they had talked.
    pub(super) fn start(
        &mut self,
        call_id: &str,
        leg: String,
        number: &str,
        referrer: Option<ReferredBy>,
    ) {
        let referrer = referrer.map(|(operator, leg, talked)| Referrer {
            operator,
            leg,
            talked,
        });
        let t = Transfer {
            leg,
            number: number.to_string(),
            referrer,
            bridged: false,
        };
        self.transfers.insert(call_id.to_string(), t);
    }

    /// The number answered and is bridged to the caller: the number and who referred.
    pub(super) fn bridged(&mut self, call_id: &str) -> Option<(String, Option<ReferredBy>)> {
        let t = self.transfers.get_mut(call_id)?;
        t.bridged = true;
        let referrer = t
            .referrer
            .as_ref()
            .map(|r| (r.operator.clone(), r.leg.clone(), r.talked));
        Some((t.number.clone(), referrer))
    }

    /// The number was not reached: the transfer is over; the number and who referred (with
    /// their leg, empty once they hung up).
    pub(super) fn failed(
        &mut self,
        call_id: &str,
    ) -> Option<(String, Option<(OperatorId, String)>)> {
        let t = self.transfers.remove(call_id)?;
        Some((t.number, t.referrer.map(|r| (r.operator, r.leg))))
    }

    /// The transfer of `call_id` is over (the number hung up); nothing left to do.
    pub(super) fn forget(&mut self, call_id: &str) {
        self.transfers.remove(call_id);
    }

    /// The caller of `call_id` is gone: what is left of its leg to a number.
    pub(super) fn caller_gone(&mut self, call_id: &str) -> Option<LegLeft> {
        let t = self.transfers.remove(call_id)?;
        Some(if t.bridged {
            LegLeft::Bridged { leg: t.leg }
        } else {
            LegLeft::Ringing {
                leg: t.leg,
                referrer_leg: t.referrer.map(|r| r.leg).filter(|l| !l.is_empty()),
            }
        })
    }

    /// The operator who referred `call_id` to a number hung up: forgotten as the transfer's
    /// referrer's leg. `false` when no transfer of this call has a referrer.
    pub(super) fn referrer_left(&mut self, call_id: &str) -> bool {
        let Some(r) = self
            .transfers
            .get_mut(call_id)
            .and_then(|t| t.referrer.as_mut())
        else {
            return false;
        };
        r.leg.clear();
        true
    }
}

/// The operator who REFERred a caller to a number: who, their leg (empty once they hung up),
/// and how long they had talked with the caller.
pub(super) type ReferredBy = (OperatorId, String, Duration);

/// What is left of a transfer to a number when the caller is gone.
pub(super) enum LegLeft {
    /// Talking to the number: its leg to hang up.
    Bridged { leg: String },
    /// Still ringing: its leg to cancel, and the referrer's leg (if they are still on) to tell.
    Ringing {
        leg: String,
        referrer_leg: Option<String>,
    },
}

/// A number as the trunk takes it: digits with an optional leading `+` (visual separators
/// dropped); `None` when it is no number.
pub(super) fn dialable(user: &str) -> Option<String> {
    let kept: String = user
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '(' | ')' | '.'))
        .collect();
    let digits = kept.strip_prefix('+').unwrap_or(&kept);
    (!digits.is_empty() && digits.len() <= 20 && digits.chars().all(|c| c.is_ascii_digit()))
        .then_some(kept)
}

#[cfg(test)]
mod tests {
    use super::super::callbacks::callback_result;
    use super::*;
    use acd::CallbackResult;
    use sip::{Host, SipUri, Uri};

    #[test]
    fn numbers_are_told_from_names() {
        assert_eq!(dialable("88005553535").as_deref(), Some("88005553535"));
        assert_eq!(
            dialable("+7-913-123-45-67").as_deref(),
            Some("+79131234567")
        );
        assert_eq!(dialable("benefits"), None);
        assert_eq!(dialable("op1"), None);
        assert_eq!(dialable("+"), None);
        assert_eq!(dialable(""), None);
        assert_eq!(dialable(&"1".repeat(21)), None);
    }

    #[test]
    fn failed_dials_count_as_the_acd_expects() {
        assert_eq!(callback_result(None), CallbackResult::NoAnswer);
        assert_eq!(callback_result(Some(480)), CallbackResult::NoAnswer);
        assert_eq!(callback_result(Some(486)), CallbackResult::Busy);
        assert_eq!(callback_result(Some(600)), CallbackResult::Busy);
        assert_eq!(callback_result(Some(404)), CallbackResult::Failed);
        assert_eq!(callback_result(Some(503)), CallbackResult::Failed);
    }

    #[test]
    fn a_host_is_kept_for_the_request_uri() {
        let mut u = SipUri::new(None, Host::V4("10.0.0.9".parse().unwrap()), Some(5080));
        u.user = Some("88005553535".into());
        assert_eq!(Uri::Sip(u).to_string(), "sip:88005553535@10.0.0.9:5080");
    }
}
