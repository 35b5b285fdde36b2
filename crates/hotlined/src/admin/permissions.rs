//! The route table: every route the admin address serves, with who may call it. The one
//! table drives both the router ([`super::router`] registers exactly the routes listed here)
//! and the permissions (the one middleware, [`super::access::guard`], looks the matched
//! route up here on every request).
//!
//! Every route has exactly one line, matched on the method and the route's pattern as
//! written (`/api/v1/appeals/{id}`). A request whose matched route has no line is refused to
//! everyone (403); since the router is built from this table, that can only be a route added
//! to the router some other way. Adding a route is one line — method, pattern, rule, handler:
//!
//! ```text
//! route!(GET "/api/v1/citizens", LIVE, citizens_api::list),
//! ```
//!
//! [`Grant::Own`] lets a role through to a handler that then keeps to what is theirs (an
//! operator's own appeals, own state); [`Grant::All`] lets it see everything the route has.

use appeals::Role;
use axum::routing::{MethodFilter, MethodRouter};

use super::{
    appeals_api, citizens_api, directory_api, events, health, metrics, openapi, operators,
    partner_api, reload, reports_api, users_api, worklists_api, AdminState,
};
use crate::web;

/// What a role may do on a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Everything the route serves.
    All,
    /// Only what is the caller's own; the handler narrows it (see [`super::access::Caller`]).
    Own,
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Anyone, without credentials (`/health`, `/metrics`, the stylesheet).
    Open,
    /// A page: served to anyone; it shows what the session cookie allows, and its forms
    /// check the session's CSRF token themselves (`crate::web`).
    Page,
    /// The partner Hotline, with `partner.token` only.
    Partner,
    /// A page for signed-in people of these roles: nobody signed in is sent to the login
    /// page (303 to `/`), another role gets a page saying so (403), in Russian.
    PageFor(&'static [(Role, Grant)]),
    /// Signed-in people of these roles (a session cookie or a bearer token).
    Roles(&'static [(Role, Grant)]),
}

use Grant::{All, Own};
use Role::{Admin, Operator, Organisation, Supervisor};

/// Any signed-in person.
const ANYONE: Rule = Rule::Roles(&[
    (Operator, All),
    (Supervisor, All),
    (Admin, All),
    (Organisation, All),
]);
/// Operational work: operators on their own, supervisors (and admins) on everything.
const OPS: Rule = Rule::Roles(&[(Operator, Own), (Supervisor, All), (Admin, All)]);
/// Everyone on the phones: the live figures, citizens' cards (operators take calls from anyone).
const LIVE: Rule = Rule::Roles(&[(Operator, All), (Supervisor, All), (Admin, All)]);
/// The applications an organisation works on: operators their own, organisations those
/// routed to them, supervisors (and admins) every one.
const CASES: Rule = Rule::Roles(&[
    (Operator, Own),
    (Supervisor, All),
    (Admin, All),
    (Organisation, Own),
]);
/// Supervising: reports, every callback.
const SUPERVISE: Rule = Rule::Roles(&[(Supervisor, All), (Admin, All)]);
/// The operator's desk and the live events behind it; a supervisor may look at a desk.
const DESK: Rule = Rule::PageFor(&[(Operator, Own), (Supervisor, All), (Admin, All)]);
/// The supervisor's board.
const BOARD: Rule = Rule::PageFor(&[(Supervisor, All), (Admin, All)]);
/// The registry: operators see their own appeals, supervisors and admins every one.
const REGISTRY: Rule = Rule::PageFor(&[(Operator, Own), (Supervisor, All), (Admin, All)]);
/// The reports page.
const REPORTS: Rule = Rule::PageFor(&[(Supervisor, All), (Admin, All)]);
/// The organisation's view: its own applications (supervisors and admins see every one).
const ORG: Rule = Rule::PageFor(&[(Organisation, Own), (Supervisor, All), (Admin, All)]);
/// Running the service: users, tokens, reloads, retention, the audit log.
const ADMIN: Rule = Rule::Roles(&[(Admin, All)]);

/// One route: its method, its pattern, who may call it, and the handler serving it.
#[derive(Clone, Copy)]
pub struct Route {
    /// `GET`, `POST`, `PATCH`, `DELETE` (a `GET` route answers `HEAD` too).
    pub method: &'static str,
    /// The pattern as axum matches it (`/api/v1/appeals/{id}`).
    pub path: &'static str,
    /// Who may call it.
    pub rule: Rule,
    /// Makes the route's handler for the router.
    pub handler: fn() -> MethodRouter<AdminState>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {:?}", self.method, self.path, self.rule)
    }
}

/// A line of [`TABLE`]: `route!(METHOD "pattern", RULE, handler)`.
macro_rules! route {
    ($method:ident $path:literal, $rule:expr, $handler:expr) => {
        Route {
            method: stringify!($method),
            path: $path,
            rule: $rule,
            handler: || axum::routing::on(MethodFilter::$method, $handler),
        }
    };
}

/// The table: one line per route.
pub const TABLE: &[Route] = &[
    route!(GET "/health", Rule::Open, health),
    route!(GET "/metrics", Rule::Open, metrics::metrics),
    route!(GET "/assets/style.css", Rule::Open, web::style),
    route!(GET "/", Rule::Page, web::login::page),
    route!(POST "/login", Rule::Page, web::login::login),
    route!(POST "/logout", Rule::Page, web::login::logout),
    route!(GET "/assets/app.js", Rule::Open, web::script),
    route!(GET "/desk", DESK, web::desk::page),
    route!(GET "/desk/pop/{id}", DESK, web::desk::pop),
    route!(GET "/board", BOARD, web::board::page),
    route!(GET "/registry", REGISTRY, web::registry::page),
    route!(GET "/appeals/{id}", REGISTRY, web::registry::appeal),
    route!(GET "/citizens/{id}", REGISTRY, web::citizen::page),
    route!(GET "/reports", REPORTS, web::reports::page),
    route!(GET "/org", ORG, web::org::page),
    route!(POST "/org/{id}", ORG, web::org::act),
    route!(GET "/api/v1/openapi.json", ANYONE, openapi),
    route!(GET "/api/v1/me", ANYONE, users_api::me),
    route!(GET "/api/v1/appeals", CASES, appeals_api::list),
    route!(GET "/api/v1/appeals/{id}", CASES, appeals_api::one),
    route!(PATCH "/api/v1/appeals/{id}", CASES, appeals_api::update),
    route!(POST "/api/v1/appeals/{id}/forward", OPS, appeals_api::forward),
    route!(GET "/api/v1/appeals/{id}/recording", OPS, appeals_api::recording),
    route!(GET "/api/v1/reports", SUPERVISE, reports_api::period),
    route!(GET "/api/v1/reports/daily", SUPERVISE, reports_api::daily),
    route!(GET "/api/v1/callbacks", SUPERVISE, appeals_api::callbacks),
    route!(GET "/api/v1/queues", LIVE, operators::queues),
    route!(GET "/api/v1/operators", OPS, operators::list),
    route!(POST "/api/v1/operators/{id}/login", OPS, operators::login),
    route!(POST "/api/v1/operators/{id}/logout", OPS, operators::logout),
    route!(POST "/api/v1/operators/{id}/pause", OPS, operators::pause),
    route!(POST "/api/v1/operators/{id}/unpause", OPS, operators::unpause),
    route!(POST "/api/v1/operators/{id}/transfer", OPS, events::transfer),
    route!(GET "/events", OPS, events::events),
    route!(POST "/api/v1/reload", ADMIN, reload),
    route!(GET "/api/v1/districts", ANYONE, directory_api::districts),
    route!(GET "/api/v1/organisations", ANYONE, directory_api::organisations),
    route!(GET "/api/v1/services", ANYONE, directory_api::services),
    route!(GET "/api/v1/case-codes", ANYONE, directory_api::codes),
    route!(GET "/api/v1/citizens", LIVE, citizens_api::list),
    route!(POST "/api/v1/citizens", LIVE, citizens_api::create),
    route!(GET "/api/v1/citizens/{id}", LIVE, citizens_api::one),
    route!(PATCH "/api/v1/citizens/{id}", LIVE, citizens_api::update),
    route!(GET "/api/v1/worklists/{list}", OPS, worklists_api::list),
    route!(POST "/api/v1/worklists/missed/{id}/close", SUPERVISE, worklists_api::close_missed),
    route!(GET "/api/v1/users", ADMIN, users_api::list),
    route!(POST "/api/v1/users", ADMIN, users_api::create),
    route!(GET "/api/v1/users/{id}", ADMIN, users_api::one),
    route!(PATCH "/api/v1/users/{id}", ADMIN, users_api::update),
    route!(GET "/api/v1/users/{id}/tokens", ADMIN, users_api::tokens),
    route!(POST "/api/v1/users/{id}/tokens", ADMIN, users_api::create_token),
    route!(DELETE "/api/v1/tokens/{id}", ADMIN, users_api::revoke_token),
    route!(GET "/api/v1/audit", ADMIN, users_api::audit),
    route!(POST "/api/v1/retention/run", ADMIN, users_api::retention_run),
    route!(POST "/api/v1/partner/appeals", Rule::Partner, partner_api::receive_forward),
    route!(POST "/api/v1/partner/appeals/{id}/status", Rule::Partner, partner_api::receive_status),
    route!(POST "/api/v1/partner/appeals/{id}/update", Rule::Partner, partner_api::receive_update),
];

/// The rule of a route, or `None` when the table has no line for it.
pub fn rule(method: &str, pattern: &str) -> Option<Rule> {
    TABLE
        .iter()
        .find(|r| r.method == method && r.path == pattern)
        .map(|r| r.rule)
}

/// What `role` may do under `rule`; `None` = 403.
pub fn grant(rule: Rule, role: Role) -> Option<Grant> {
    match rule {
        Rule::Roles(roles) | Rule::PageFor(roles) => {
            roles.iter().find(|(r, _)| *r == role).map(|(_, g)| *g)
        }
        Rule::Open | Rule::Page | Rule::Partner => None,
    }
}
