//! Call control without I/O: the hotline's calls, their voice menus, queue waiting, operator
//! legs, transfers, callbacks and feature codes, as one sans-IO state machine ([`Core`]).
//!
//! Nothing here owns a socket, a thread, a task or a clock: every entry point takes `now`, and
//! everything the core wants done comes out as an [`Output`]. The `gateway` crate is the only
//! driver in the daemon (sockets, the media thread, the recorder, real time); the in-memory
//! harness of this crate's tests is the other one (simulated phones and trunk, a virtual clock
//! that jumps to the next wake-up).
//!
//! # The contract (quinn's `handle_*` / `poll_*`, str0m's run loop)
//!
//! Inputs — one type, [`Input`], given to [`Core::handle`] with the time it happened:
//! - [`Input::Sip`]: a parsed SIP message from the transport (the transaction endpoint inside
//!   the core answers retransmissions and runs timers A–K);
//! - [`Input::Media`]: what a call's media reports ([`MediaEvent`]: a digit, a playback that
//!   finished, no RTP for the timeout, a message that could not be recorded);
//! - [`Input::Returning`]: a returning-caller lookup answered ([`Output::LookupReturning`]);
//! - [`Input::Booked`]: the operator book's verdict on a feature code's command
//!   ([`BookEntry::Apply`]);
//! - [`Input::Timeout`]: the time reached [`Core::poll_timeout`].
//!
//! Commands — methods, because their caller waits for the answer:
//! [`Core::resolve_operator_command`] then [`Core::operator_command`] (the driver asks the
//! operator book in between), [`Core::operator_status`] and [`Core::transfer`] (the admin API
//! and the workspace; a transfer takes the same path as the operator's REFER),
//! [`Core::reload`], [`Core::begin_drain`] and [`Core::hangup_all`] (shutdown),
//! [`Core::restore_operators`] (the book's saved state, pushed in at start).
//!
//! Outputs — one type, [`Output`], drained with [`Core::poll_output`] after every input and
//! command until it returns `None`, in order:
//! - [`Output::Transmit`]: bytes for a peer (the transport frames them);
//! - [`Output::Media`]: a [`MediaCommand`] for the media edge: start a leg on ports the core
//!   took with [`MediaPorts`], update it, play prompts or music, stop, bridge two legs, record
//!   a message, close;
//! - [`Output::LookupReturning`]: ask the appeal store who served this caller before; the
//!   answer comes back as [`Input::Returning`] (or never: the core asks at most once per join
//!   and the driver bounds the wait);
//! - [`Output::Book`]: for the operator book (the daemon's operator table): a feature code's
//!   command to check and record ([`BookEntry::Apply`], answered as [`Input::Booked`]; the
//!   call waits unanswered meanwhile), or the queues a reload moved an operator to
//!   ([`BookEntry::QueuesChanged`]);
//! - [`Output::Appeal`]: an [`AppealEvent`] for the appeal writer — a call arrived (under an
//!   id the core minted, [`AppealIds`]), a key, a menu step, an operator's answer, a transfer,
//!   a callback's attempts, the end — in the order they happened;
//! - [`Output::Live`]: a [`live::LiveEvent`] for the workspace's live pages — an operator's
//!   new state (with since and the pause reason), an offer ringing an operator's phone (in
//!   the same drain as our INVITE) and its answer, end or cancel, a caller joining or leaving
//!   a queue (answered, abandoned…), and after a reload the [`live::Roster`] (names, skills,
//!   titles) followed by every operator afresh. The driver forwards them without waiting.
//!
//! Then [`Core::poll_timeout`] says when to call again with [`Input::Timeout`].
//!
//! Nothing is called out to: no trait object answers the core. The one synchronous question
//! left is [`MediaPorts`] (a port pair before the answer to an INVITE). Figures for the admin
//! API and metrics go to [`Stats`] and its [`live::ActivityBoard`].
//!
//! # Random values: one seed
//! Nothing in the core draws from the OS or a thread's generator. [`Core::new`] takes one seed
//! (the daemon's is fresh randomness at every start; the harness's a constant) and every
//! random value the core makes comes from it through [`sip::Tokens`]: To tags, branches, the
//! Call-IDs and From tags of the calls we place, the first CSeq of a dialog, cnonces, SDP
//! session ids, and (from seeds taken from it at construction) the transaction endpoint's own
//! tags and the appeal ids. So a harness run with the same seed and the same inputs puts out
//! byte-identical SIP (a test in `tests/flows.rs` checks it).
//!
//! # Appeal ids
//! The core mints them ([`AppealIds`]): UUIDv7 from the driver's civil time, a counter within
//! the millisecond and 62 bits from the generator seeded at construction. As the daemon's seed
//! is fresh at every start, neither a restart nor a second daemon repeats an id; the harness
//! gets the same ids every run.
//!
//! # Parts of a call
//! [`Core`] is the router: it owns the parts and the shared services (the transaction
//! endpoint, registrar, ACD, statistics, the seeded generator, and `Out`, the sink of outputs
//! and timers every part writes into). A part is a struct in its own module with private
//! state, reached through methods that take what they need (`&mut Out`, the settings, a
//! Call-ID), never the whole core; where a flow needs two parts, the router's code calls
//! each in turn.
//! - `callers` — the caller's call (`Calls`, `Call`): dialog, INVITE transaction, SDP, leg,
//!   session timer, its timers; answer, re-INVITE, ACK, BYE, release.
//! - `menu` — the voice menu (`MenuState`): driven on the call's media handle, it returns a
//!   `MenuStep` for what needs another part.
//! - `queues` — the ACD's callers, returning-caller lookups, the queues' hours (`Queues`),
//!   and a caller's part in the queues (`QueueState`); `waiting` — what a waiting caller
//!   hears and may do (announcements, callback offer, overflow), knowing nothing of `Core`.
//! - `operator_legs` — our UAC legs (forks, CANCEL, ACK, BYE) for every call we place
//!   (`OpLegs`).
//! - `callbacks` — the bookings the ACD holds and the runs being dialled (`Callbacks`); the
//!   router's side is `callback_calls`.
//! - `outbound` — callers being handed to an outside number (`Dialling`); the router's side
//!   is `trunk_calls`.
//! - `transfer` — callers being handed to another operator (`DirectTransfers`); the
//!   router's side (REFER, the transfer command) is `transfer_calls`.
//! - `feature_codes` — the codes and the calls waiting for the operator book
//!   (`AwaitingBook`); the router's side is `feature_code_calls`.
//! - `live_out` — the live events: operators' states (`LiveOperators`), offers, queue joins
//!   and leaves.
//! - `dispatch`, `call`, `queue`, `acd_link` — the router: the request dispatch, the
//!   caller's call meeting the menu, the queue and the legs, a waiting caller, the ACD's
//!   actions. `acd_reload` — a reload's operators reaching the running ACD.
//! - `appeal` — the appeal events and the ids the core mints; `settings` — the plain
//!   configuration values the core runs on.

mod appeal;
mod core;
mod io;
pub mod live;
mod log;
pub mod settings;
mod stats;
mod waiting;

pub use crate::core::feature_codes::{FeatureCodes, FeaturePrompts};
pub use crate::core::queue::{ReturningFound, RETURNING_TIMEOUT};
pub use crate::core::transfer::{TransferError, TransferTarget};
pub use crate::core::{Core, OperatorCommand, OperatorControlError};
pub use crate::waiting::WAITING_PROMPTS;
pub use appeal::{AppealEvent, AppealIds, AppealRecord};
pub use io::{
    recording_file, BookAnswer, BookEntry, BookRequest, DtmfVia, Input, LegId, MediaCommand,
    MediaEvent, MediaPorts, Output, ReturningQuery,
};
pub use log::{
    CallArrived, CallEnded, CallbackAttempt, CallbackOutcome, Caller, EndReason, IvrEnd, IvrStep,
    OperatorRefusal, TransferKind, TransferRecord,
};
pub use settings::{
    DtmfMode, LineSettings, OperatorSettings, Settings, TrunkOutbound, TrunkSettings,
};
pub use stats::{
    QueueWait, RegisteredContact, ResponseCount, ShedReason, Stats, DTMF_KINDS, SIP_RESPONSE_CODES,
};
