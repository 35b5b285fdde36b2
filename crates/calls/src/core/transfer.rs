//! Transfers: the transfer command's target and errors ([`TransferTarget`],
//! [`TransferError`]) and [`DirectTransfers`], the part that owns the callers being handed to
//! another operator. The router's side (REFER, the transfer command, every flow below) is
//! `transfer_calls.rs`.

use super::*;

/// Where a transfer command sends the caller ([`Core::transfer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    /// A queue of the ACD (the caller waits there again, priority kept).
    Queue(String),
    /// An operator of the ACD (rung if ready and idle).
    Operator(String),
    /// A number dialled through the trunk.
    Number(String),
}

/// Why a transfer command was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("the operator is not talking to a caller")]
    NoCall,
    #[error("a transfer of this call is already under way")]
    InProgress,
    #[error("no such queue")]
    UnknownQueue,
    #[error("no such operator")]
    UnknownOperator,
    #[error("not a number that can be dialled")]
    NotANumber,
    #[error("the SIP gateway is not running")]
    Stopped,
}

/// Callers being handed to another operator (a REFER naming them), by Call-ID (a field of
/// [`Core`]; only this file looks inside).
#[derive(Default)]
pub(super) struct DirectTransfers(HashMap<String, DirectTransfer>);

impl DirectTransfers {
    /// Whether a transfer of `call_id`'s caller to an operator is under way.
    pub(super) fn under_way(&self, call_id: &str) -> bool {
        self.0.contains_key(call_id)
    }

    /// The target operator's phones ring for `call_id`'s caller.
    pub(super) fn start(&mut self, call_id: &str, t: DirectTransfer) {
        self.0.insert(call_id.to_string(), t);
    }

    /// The transfer of `call_id` is over (answered, failed, or the caller is gone).
    pub(super) fn take(&mut self, call_id: &str) -> Option<DirectTransfer> {
        self.0.remove(call_id)
    }

    /// The transfer ringing `operator`, over (the ACD's ring timeout): the caller's Call-ID
    /// and the transfer.
    pub(super) fn take_ringing(
        &mut self,
        operator: &OperatorId,
    ) -> Option<(String, DirectTransfer)> {
        let call_id = self
            .0
            .iter()
            .find(|(_, t)| &t.operator == operator)
            .map(|(id, _)| id.clone())?;
        let t = self.0.remove(&call_id)?;
        Some((call_id, t))
    }

    /// The transferring operator hung up while the target operator rings: `false` when no
    /// direct transfer of `call_id` is under way.
    pub(super) fn transferor_left(&mut self, call_id: &str) -> bool {
        match self.0.get_mut(call_id) {
            Some(t) => {
                t.referrer_leg.clear();
                true
            }
            None => false,
        }
    }
}

/// A caller being handed to another operator.
pub(super) struct DirectTransfer {
    /// Our leg ringing the target operator.
    leg: String,
    operator: OperatorId,
    /// The transferring operator and their leg (empty once they hung up).
    referrer: OperatorId,
    referrer_leg: String,
    /// From their bridge to the REFER.
    talked: Duration,
}

impl DirectTransfer {
    /// Our leg `leg` rings `operator` for a caller `referrer` (on `referrer_leg`, after
    /// `talked`) handed over.
    pub(super) fn new(
        leg: String,
        operator: OperatorId,
        referrer: OperatorId,
        referrer_leg: &str,
        talked: Duration,
    ) -> Self {
        let referrer_leg = referrer_leg.to_string();
        DirectTransfer {
            leg,
            operator,
            referrer,
            referrer_leg,
            talked,
        }
    }

    /// Our leg ringing the target operator.
    pub(super) fn leg(&self) -> &str {
        &self.leg
    }

    /// The target operator.
    pub(super) fn operator(&self) -> &OperatorId {
        &self.operator
    }

    /// The transferring operator.
    pub(super) fn referrer(&self) -> &OperatorId {
        &self.referrer
    }

    /// The transferring operator's leg, unless they hung up.
    pub(super) fn referrer_leg(&self) -> Option<&str> {
        Some(self.referrer_leg.as_str()).filter(|l| !l.is_empty())
    }

    /// How long the transferring operator had talked with the caller.
    pub(super) fn talked(&self) -> Duration {
        self.talked
    }
}

/// The NOTIFY status for a direct transfer whose leg failed with `status`.
pub(super) fn direct_status(status: Option<u16>) -> u16 {
    match status {
        Some(486 | 600) => 486,
        None | Some(408 | 480 | 487 | 603) => 480,
        Some(s) => s,
    }
}
