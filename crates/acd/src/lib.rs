//! Sans-IO automatic call distribution (ACD) for Hotline.
//!
//! [`Acd`] decides which waiting caller goes to which operator and when. It knows nothing about
//! SIP, RTP, sockets, tasks, SQL or the clock: the daemon feeds it events with the current
//! `Instant` and drains what to do.
//!
//! # The contract (after quinn's `Connection`)
//! - **Inputs** (`caller_joined`, `caller_left`, `offer_answered`, `offer_failed`, `call_ended`,
//!   `callback_requested`, `callback_result`, operator commands, `handle_timeout`) change state
//!   and may queue actions. They return an [`AcdError`] for an id the ACD does not know or an event
//!   that no longer applies (an answer racing a cancel): the daemon logs it and tidies its own leg.
//! - **Outputs**: after every input drain [`Acd::poll_action`] until `None`, then sleep until
//!   [`Acd::poll_timeout`] and call [`Acd::handle_timeout`]. [`Acd::take_changed`] names the
//!   operators whose status may have changed since it was last asked, so a watcher (the live
//!   pages) reads those instead of every operator after every input.
//!
//! # What it promises
//! - An operator is never offered a second caller while ringing, talking, wrapping up, paused,
//!   logged out or unregistered.
//! - Within a queue, callers are offered in order of priority, then arrival; a caller skips an
//!   operator it has already missed until it has missed every free one (then a new round after
//!   the queue's retry delay), and returning callers go to their previous operator first.
//! - Every caller that joined leaves exactly once with an [`Action::Left`]; nothing refers to a
//!   caller after its `Left`.
//! - Per-event work does not grow with the product of callers and operators: waiting callers are
//!   a sorted vector per queue (rank = position in O(log n)), free operators an ordered set per
//!   queue and level keyed by the strategy, timers one ordered set.

mod config;
mod core;

pub use config::{
    AcdConfig, CallbackConfig, CallerId, ConfigError, EmptyRule, OperatorConfig, OperatorId,
    OverflowAction, QueueConfig, QueueId, ReturningConfig, Skill, Strategy,
};
pub use core::{
    Acd, AcdError, Action, CallbackResult, Estimate, OfferFailure, OperatorState, OperatorStatus,
    Outcome, OverflowReason, PauseReason, QueueStatus,
};
