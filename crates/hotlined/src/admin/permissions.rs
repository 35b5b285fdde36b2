//! Who may call which route: the one table of route × role, read by the one middleware
//! that enforces it ([`super::access::guard`]).
//!
//! Every route the admin router serves has exactly one line here, matched on the method and
//! the route's pattern as written in the router (`/api/v1/appeals/{id}`). A route without a
//! line is refused to everyone (403) and fails `every_route_has_a_permission` and the route
//! walk in the tests. Adding a route's permission is one line:
//!
//! ```text
//! ("GET", "/api/v1/citizens", OPS),
//! ```
//!
//! [`Grant::Own`] lets a role through to a handler that then keeps to what is theirs (an
//! operator's own appeals, own state); [`Grant::All`] lets it see everything the route has.

use appeals::Role;

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

/// The table: (method, route pattern, rule). One line per route.
pub const TABLE: &[(&str, &str, Rule)] = &[
    ("GET", "/health", Rule::Open),
    ("GET", "/metrics", Rule::Open),
    ("GET", "/assets/style.css", Rule::Open),
    ("GET", "/", Rule::Page),
    ("POST", "/login", Rule::Page),
    ("POST", "/logout", Rule::Page),
    ("GET", "/assets/app.js", Rule::Open),
    ("GET", "/desk", DESK),
    ("GET", "/desk/pop/{id}", DESK),
    ("GET", "/board", BOARD),
    ("GET", "/registry", REGISTRY),
    ("GET", "/appeals/{id}", REGISTRY),
    ("GET", "/citizens/{id}", REGISTRY),
    ("GET", "/reports", REPORTS),
    ("GET", "/org", ORG),
    ("POST", "/org/{id}", ORG),
    ("GET", "/api/v1/openapi.json", ANYONE),
    ("GET", "/api/v1/me", ANYONE),
    ("GET", "/api/v1/appeals", CASES),
    ("GET", "/api/v1/appeals/{id}", CASES),
    ("PATCH", "/api/v1/appeals/{id}", CASES),
    ("POST", "/api/v1/appeals/{id}/forward", OPS),
    ("GET", "/api/v1/appeals/{id}/recording", OPS),
    ("GET", "/api/v1/reports/daily", SUPERVISE),
    ("GET", "/api/v1/callbacks", SUPERVISE),
    ("GET", "/api/v1/queues", LIVE),
    ("GET", "/api/v1/operators", OPS),
    ("POST", "/api/v1/operators/{id}/login", OPS),
    ("POST", "/api/v1/operators/{id}/logout", OPS),
    ("POST", "/api/v1/operators/{id}/pause", OPS),
    ("POST", "/api/v1/operators/{id}/unpause", OPS),
    ("POST", "/api/v1/operators/{id}/transfer", OPS),
    ("GET", "/events", OPS),
    ("POST", "/api/v1/reload", ADMIN),
    ("GET", "/api/v1/districts", ANYONE),
    ("GET", "/api/v1/organisations", ANYONE),
    ("GET", "/api/v1/services", ANYONE),
    ("GET", "/api/v1/case-codes", ANYONE),
    ("GET", "/api/v1/citizens", LIVE),
    ("POST", "/api/v1/citizens", LIVE),
    ("GET", "/api/v1/citizens/{id}", LIVE),
    ("PATCH", "/api/v1/citizens/{id}", LIVE),
    ("GET", "/api/v1/worklists/{list}", OPS),
    ("POST", "/api/v1/worklists/missed/{id}/close", SUPERVISE),
    ("GET", "/api/v1/users", ADMIN),
    ("POST", "/api/v1/users", ADMIN),
    ("GET", "/api/v1/users/{id}", ADMIN),
    ("PATCH", "/api/v1/users/{id}", ADMIN),
    ("GET", "/api/v1/users/{id}/tokens", ADMIN),
    ("POST", "/api/v1/users/{id}/tokens", ADMIN),
    ("DELETE", "/api/v1/tokens/{id}", ADMIN),
    ("GET", "/api/v1/audit", ADMIN),
    ("POST", "/api/v1/retention/run", ADMIN),
    ("POST", "/api/v1/partner/appeals", Rule::Partner),
    ("POST", "/api/v1/partner/appeals/{id}/status", Rule::Partner),
];

/// The rule of a route, or `None` when the table has no line for it.
pub fn rule(method: &str, pattern: &str) -> Option<Rule> {
    TABLE
        .iter()
        .find(|(m, p, _)| *m == method && *p == pattern)
        .map(|(_, _, r)| *r)
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
