//! The operators' registrar (RFC 3261 §10.3), sans-IO.
//!
//! Operators' phones REGISTER `sip:<login>@<domain>` with digest credentials; the registrar
//! keeps their contacts (bindings) until they expire, and the ACD asks [`Registrar::lookup`]
//! where to ring an operator. Time comes in as an argument; the daemon calls
//! [`Registrar::expire`] when [`Registrar::poll_timeout`] says so.
//!
//! Brute-force protection: a source address (IPv6 by /64) that fails authentication
//! `lockout_threshold` times within `lockout_window` gets `503 Service Unavailable` with
//! `Retry-After` for `lockout_duration`, without its credentials even being looked at. 503 rather
//! than 403, because a call centre's phones usually share one NAT address: a 403 makes many
//! phones stop registering until someone touches them, while 503 + Retry-After (RFC 3261
//! §21.5.4) makes every phone behind the address come back by itself once the lock-out ends.
//! The attacker learns nothing more from one than from the other.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::auth::{AuthFailure, AuthOutcome, DigestCredentials, DigestServer, Secret};
use crate::message::{HeaderName, Method, Request, Response, Uri};
use crate::typed::NameAddr;
use crate::Peer;

/// Registrar settings. `domain` is also the digest realm.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrarConfig {
    pub domain: String,
    /// Shorter non-zero registrations get `423 Interval Too Brief`.
    pub min_expires: u32,
    /// Longer registrations are granted this long.
    pub max_expires: u32,
    /// When neither the contact nor the request says how long.
    pub default_expires: u32,
    /// Above this, the binding closest to expiry that the REGISTER did not name is dropped.
    pub max_contacts_per_user: usize,
    /// Failed authentications from one source within `lockout_window` that lock it out.
    pub lockout_threshold: u32,
    pub lockout_window: Duration,
    pub lockout_duration: Duration,
    /// How long a nonce is good for before the client is told it is stale.
    pub nonce_lifetime: Duration,
}

impl RegistrarConfig {
    /// Defaults: expires 60 / 3600 / 3600 s, 10 contacts per user, 10 failures in 5 minutes
    /// lock a source out for 15 minutes, nonces live 5 minutes.
    pub fn new(domain: impl Into<String>) -> RegistrarConfig {
        RegistrarConfig {
            domain: domain.into(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts_per_user: 10,
            lockout_threshold: 10,
            lockout_window: Duration::from_secs(300),
            lockout_duration: Duration::from_secs(900),
            nonce_lifetime: Duration::from_secs(300),
        }
    }
}

/// One registered contact of a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The contact URI (where to send requests for the user).
    pub uri: Uri,
    /// The Contact value as registered, parameters included.
    pub contact: NameAddr,
    pub expires_at: Instant,
    pub call_id: String,
    pub cseq: u32,
    /// Where the REGISTER came from: behind NAT, the only address that reaches the phone.
    pub source: Peer,
    /// `+sip.instance` (RFC 5626 §4.1), unquoted: the same device under a new contact URI.
    pub instance: Option<String>,
    pub q: Option<f32>,
    /// When the binding was last added or refreshed.
    pub updated_at: Instant,
}

/// What happened to a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Refreshed,
    /// Removed by the user (expires 0, `Contact: *`) or evicted by a newer contact.
    Removed,
    /// Timed out.
    Expired,
}

/// A binding change, for logs and for the ACD (operator went on- or offline).
#[derive(Debug, Clone, PartialEq)]
pub struct BindingChange {
    pub user: String,
    pub kind: ChangeKind,
    pub contact: Uri,
}

/// The answer to a REGISTER.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterResult {
    pub response: Response,
    pub changes: Vec<BindingChange>,
    /// The user whose credentials were accepted, if any.
    pub authenticated: Option<String>,
}

/// Failed authentications of one source.
#[derive(Debug, Clone, Copy)]
struct Failures {
    window_start: Instant,
    count: u32,
    locked_until: Option<Instant>,
}

/// Most sources whose failures are tracked at once.
const MAX_TRACKED_SOURCES: usize = 4096;

/// Bindings per user, digest state and lock-outs.
#[derive(Debug)]
pub struct Registrar {
    config: RegistrarConfig,
    digest: DigestServer,
    bindings: HashMap<String, Vec<Binding>>,
    failures: HashMap<IpAddr, Failures>,
}

/// A request refused before anything changed: the response to send.
struct Reject(Response);

/// Why a contact update was refused (turned into a response by the caller).
enum UpdateError {
    Bad(&'static str),
    /// Shorter than `min_expires`: 423 with Min-Expires.
    TooBrief,
    /// Same Call-ID, CSeq not higher than the binding's (§10.3 step 7): 500.
    OutOfOrder,
    /// The request alone names more contacts than allowed.
    TooManyContacts,
}

impl Registrar {
    /// `secret_key` signs nonces; `epoch` is any instant at or before the first `now`.
    pub fn new(config: RegistrarConfig, secret_key: [u8; 32], epoch: Instant) -> Registrar {
        let digest = DigestServer::new(
            config.domain.clone(),
            secret_key,
            config.nonce_lifetime,
            epoch,
        );
        Registrar {
            config,
            digest,
            bindings: HashMap::new(),
            failures: HashMap::new(),
        }
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// The digest server, to challenge operators' other requests in the same realm.
    pub fn digest_mut(&mut self) -> &mut DigestServer {
        &mut self.digest
    }

    /// Process a REGISTER from `source`. `lookup` gives an operator login's secret.
    pub fn handle_register(
        &mut self,
        now: Instant,
        source: Peer,
        req: &Request,
        lookup: impl Fn(&str) -> Option<Secret>,
    ) -> RegisterResult {
        let mut changes = Vec::new();
        let mut authenticated = None;
        let outcome = self.register(now, source, req, &lookup, &mut changes, &mut authenticated);
        let response = match outcome {
            Ok(r) | Err(Reject(r)) => r,
        };
        RegisterResult {
            response,
            changes,
            authenticated,
        }
    }

    fn register(
        &mut self,
        now: Instant,
        source: Peer,
        req: &Request,
        lookup: &impl Fn(&str) -> Option<Secret>,
        changes: &mut Vec<BindingChange>,
        authenticated: &mut Option<String>,
    ) -> Result<Response, Reject> {
        if req.method != Method::Register {
            let mut r = self.reply(req, 405);
            r.headers.push(HeaderName::Allow, "REGISTER");
            return Err(Reject(r));
        }
        let ip = source_key(source.addr.ip());
        if let Some(until) = self.locked_until(ip, now) {
            let mut r = self.reply(req, 503);
            r.headers
                .push(HeaderName::RetryAfter, ceil_secs(until - now).to_string());
            return Err(Reject(r));
        }

        let bad = |reason: &str| {
            let mut r = self.reply(req, 400);
            r.reason = reason.to_string();
            Reject(r)
        };
        let to = req.headers.to_addr().map_err(|e| bad(&e.0))?;
        let call_id = req.headers.call_id().map_err(|e| bad(&e.0))?.to_string();
        let cseq = req.headers.cseq().map_err(|e| bad(&e.0))?;
        if cseq.method != Method::Register {
            return Err(bad("CSeq method is not REGISTER"));
        }
        let contacts = req.headers.contacts().map_err(|e| bad(&e.0))?;
        let header_expires = req.headers.expires().map_err(|e| bad(&e.0))?;
        // RFC 3261 §10.3 step 2: we support no extensions.
        let required: Vec<&str> = req.headers.tokens(&HeaderName::Require).collect();
        if !required.is_empty() {
            let mut r = self.reply(req, 420);
            r.headers.push(HeaderName::Unsupported, required.join(", "));
            return Err(Reject(r));
        }
        let Some(aor_user) = to.uri.as_sip().and_then(|u| u.user.clone()) else {
            return Err(Reject(self.reply(req, 404)));
        };

        // Step 3: authentication.
        let user = self.authenticate(now, ip, req, lookup)?;
        *authenticated = Some(user.clone());
        // Step 4: an operator registers only their own login.
        if user != aor_user {
            return Err(Reject(self.reply(req, 403)));
        }

        // Bindings past their time are gone before anything is compared with them.
        let mut current: Vec<(Binding, bool)> = Vec::new();
        for b in self.bindings.remove(&user).unwrap_or_default() {
            if b.expires_at > now {
                current.push((b, false));
            } else {
                changes.push(change(&user, ChangeKind::Expired, &b));
            }
        }
        let original = current.clone();
        let before_len = changes.len();
        let outcome = match contacts {
            None => remove_all(
                &user,
                header_expires,
                &call_id,
                cseq.seq,
                &mut current,
                changes,
            ),
            Some(list) if list.is_empty() => Ok(()),
            Some(list) => {
                let update = Update {
                    now,
                    source,
                    user: &user,
                    header_expires,
                    call_id: &call_id,
                    cseq: cseq.seq,
                };
                update.apply(&self.config, list, &mut current, changes)
            }
        };
        if let Err(e) = outcome {
            // Nothing of this request applies: put back what was there (less the expired).
            changes.truncate(before_len);
            self.store(&user, original.into_iter().map(|(b, _)| b).collect());
            return Err(Reject(self.update_error(req, e)));
        }
        let current: Vec<Binding> = current.into_iter().map(|(b, _)| b).collect();
        let mut r = self.reply(req, 200);
        for b in &current {
            let mut c = b.contact.clone();
            c.params
                .set("expires", Some(ceil_secs(b.expires_at - now).to_string()));
            r.headers.push(HeaderName::Contact, c.to_string());
        }
        self.store(&user, current);
        Ok(r)
    }

    fn store(&mut self, user: &str, bindings: Vec<Binding>) {
        if !bindings.is_empty() {
            self.bindings.insert(user.to_string(), bindings);
        }
    }

    fn authenticate(
        &mut self,
        now: Instant,
        ip: IpAddr,
        req: &Request,
        lookup: &impl Fn(&str) -> Option<Secret>,
    ) -> Result<String, Reject> {
        // With several Authorization headers (one per realm that challenged on the way), use
        // the one for our realm.
        let realm = self.digest.realm();
        let all: Vec<&str> = req.headers.get_all(&HeaderName::Authorization).collect();
        let ours = all
            .iter()
            .find(|v| DigestCredentials::parse(v).is_ok_and(|c| c.realm == realm))
            .or(all.first())
            .copied();
        let Some(value) = ours else {
            return Err(Reject(self.challenge(now, req, false)));
        };
        match self.digest.verify(now, &Method::Register, value, lookup) {
            AuthOutcome::Ok { user } => Ok(user),
            // A replayed (nonce, nc) proves nothing, but a real phone that reused a nonce
            // only needs a fresh one, without asking its user for the password again.
            AuthOutcome::Stale | AuthOutcome::Failed(AuthFailure::Replay) => {
                Err(Reject(self.challenge(now, req, true)))
            }
            AuthOutcome::Failed(_) => {
                self.record_failure(ip, now);
                Err(Reject(self.challenge(now, req, false)))
            }
        }
    }

    fn challenge(&self, now: Instant, req: &Request, stale: bool) -> Response {
        let mut r = self.reply(req, 401);
        for v in self.digest.challenge(now, stale) {
            r.headers.push(HeaderName::WwwAuthenticate, v);
        }
        r
    }

    fn update_error(&self, req: &Request, e: UpdateError) -> Response {
        match e {
            UpdateError::Bad(reason) => {
                let mut r = self.reply(req, 400);
                r.reason = reason.to_string();
                r
            }
            UpdateError::TooBrief => {
                let mut r = self.reply(req, 423);
                r.headers
                    .push(HeaderName::MinExpires, self.config.min_expires.to_string());
                r
            }
            UpdateError::OutOfOrder => {
                let mut r = self.reply(req, 500);
                r.reason = "Out Of Order REGISTER".to_string();
                r
            }
            UpdateError::TooManyContacts => {
                let mut r = self.reply(req, 403);
                r.reason = "Too Many Contacts".to_string();
                r
            }
        }
    }

    /// `req.response(status)` with a To tag (RFC 3261 §8.2.6.2), the same for every response
    /// to one Call-ID.
    fn reply(&self, req: &Request, status: u16) -> Response {
        let mut r = req.response(status);
        if let Ok(mut to) = req.headers.to_addr() {
            if to.tag().is_none() {
                let seed = format!(
                    "{}\n{}",
                    self.config.domain,
                    req.headers.call_id().unwrap_or("")
                );
                let tag = crate::auth::Algorithm::Sha256.hex(seed.as_bytes());
                to.params.set("tag", Some(tag.chars().take(16).collect()));
                r.headers.set(HeaderName::To, to.to_string());
            }
        }
        r
    }

    fn locked_until(&self, ip: IpAddr, now: Instant) -> Option<Instant> {
        self.failures
            .get(&ip)
            .and_then(|f| f.locked_until)
            .filter(|&until| until > now)
    }

    /// Count a failed authentication; at the threshold the source is locked out.
    fn record_failure(&mut self, ip: IpAddr, now: Instant) {
        let cfg = &self.config;
        if !self.failures.contains_key(&ip) && self.failures.len() >= MAX_TRACKED_SOURCES {
            prune_failures(&mut self.failures, now, cfg.lockout_window);
            if self.failures.len() >= MAX_TRACKED_SOURCES {
                // forget the unlocked source whose window started longest ago
                let oldest = self
                    .failures
                    .iter()
                    .filter(|(_, f)| f.locked_until.is_none_or(|u| u <= now))
                    .min_by_key(|(_, f)| f.window_start)
                    .map(|(ip, _)| *ip);
                match oldest {
                    Some(old) => {
                        self.failures.remove(&old);
                    }
                    None => return,
                }
            }
        }
        let f = self.failures.entry(ip).or_insert(Failures {
            window_start: now,
            count: 0,
            locked_until: None,
        });
        if now.saturating_duration_since(f.window_start) > cfg.lockout_window {
            f.window_start = now;
            f.count = 0;
        }
        f.count += 1;
        if f.count >= cfg.lockout_threshold {
            f.locked_until = Some(now + cfg.lockout_duration);
            f.window_start = now;
            f.count = 0;
        }
    }

    /// The user's unexpired bindings, highest q first (no q counts as 1.0), then the most
    /// recently refreshed.
    pub fn lookup(&self, now: Instant, user: &str) -> Vec<&Binding> {
        let mut out: Vec<&Binding> = self
            .bindings
            .get(user)
            .map(|bs| bs.iter().filter(|b| b.expires_at > now).collect())
            .unwrap_or_default();
        out.sort_by(|a, b| {
            let (qa, qb) = (a.q.unwrap_or(1.0), b.q.unwrap_or(1.0));
            qb.total_cmp(&qa).then(b.updated_at.cmp(&a.updated_at))
        });
        out
    }

    /// Drop bindings whose time is up (and lock-out records that no longer matter).
    pub fn expire(&mut self, now: Instant) -> Vec<BindingChange> {
        let mut changes = Vec::new();
        self.bindings.retain(|user, bs| {
            bs.retain(|b| {
                let keep = b.expires_at > now;
                if !keep {
                    changes.push(change(user, ChangeKind::Expired, b));
                }
                keep
            });
            !bs.is_empty()
        });
        prune_failures(&mut self.failures, now, self.config.lockout_window);
        changes
    }

    /// When the next binding expires: call [`Registrar::expire`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.bindings.values().flatten().map(|b| b.expires_at).min()
    }

    /// Users with bindings and their bindings (expired ones included until
    /// [`Registrar::expire`] runs), sorted by user, for the admin view.
    pub fn users(&self) -> Vec<(&str, &[Binding])> {
        let mut out: Vec<(&str, &[Binding])> = self
            .bindings
            .iter()
            .map(|(u, bs)| (u.as_str(), bs.as_slice()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }
}

/// The parts of a REGISTER that a contact update needs.
struct Update<'a> {
    now: Instant,
    source: Peer,
    user: &'a str,
    header_expires: Option<u32>,
    call_id: &'a str,
    cseq: u32,
}

impl Update<'_> {
    fn binding(
        &self,
        contact: NameAddr,
        expires: u32,
        instance: Option<String>,
        q: Option<f32>,
    ) -> Binding {
        Binding {
            uri: contact.uri.clone(),
            contact,
            expires_at: self.now + Duration::from_secs(u64::from(expires)),
            call_id: self.call_id.to_string(),
            cseq: self.cseq,
            source: self.source,
            instance,
            q,
            updated_at: self.now,
        }
    }

    /// Add, refresh and remove the listed contacts (RFC 3261 §10.3 steps 6–7). On error
    /// `current` may be half-changed; the caller restores it.
    fn apply(
        &self,
        cfg: &RegistrarConfig,
        list: Vec<NameAddr>,
        current: &mut Vec<(Binding, bool)>,
        changes: &mut Vec<BindingChange>,
    ) -> Result<(), UpdateError> {
        let user = self.user;
        // Every interval is checked before anything changes.
        let mut wanted = Vec::with_capacity(list.len());
        for contact in list {
            let expires = match contact.params.get("expires") {
                Some(Some(v)) => match v.trim().parse::<u64>() {
                    Ok(n) => u32::try_from(n).unwrap_or(u32::MAX),
                    Err(_) => return Err(UpdateError::Bad("Bad Contact expires")),
                },
                _ => self.header_expires.unwrap_or(cfg.default_expires),
            };
            if expires != 0 && expires < cfg.min_expires {
                return Err(UpdateError::TooBrief);
            }
            wanted.push((contact, expires.min(cfg.max_expires)));
        }
        for (contact, expires) in wanted {
            let instance = contact
                .params
                .value("+sip.instance")
                .map(|v| v.trim_matches('"').to_string());
            let q = contact
                .params
                .value("q")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .filter(|q| (0.0..=1.0).contains(q));
            let pos = current
                .iter()
                .position(|(b, _)| same_binding(b, &contact.uri, instance.as_deref()));
            match pos {
                Some(i) => {
                    let (old, touched) = &current[i];
                    // Step 7: a REGISTER no newer than the one behind the binding.
                    if !touched && old.call_id == self.call_id && self.cseq <= old.cseq {
                        return Err(UpdateError::OutOfOrder);
                    }
                    let touched = *touched;
                    if expires == 0 {
                        let (old, _) = current.remove(i);
                        changes.push(change(user, ChangeKind::Removed, &old));
                        continue;
                    }
                    let b = self.binding(contact, expires, instance, q);
                    // named twice in one request: one change is enough
                    if !touched {
                        changes.push(change(user, ChangeKind::Refreshed, &b));
                    }
                    current[i] = (b, true);
                }
                None if expires == 0 => {}
                None => {
                    let b = self.binding(contact, expires, instance, q);
                    changes.push(change(user, ChangeKind::Added, &b));
                    current.push((b, true));
                }
            }
        }
        // Too many contacts: drop the ones this request did not name, soonest to expire
        // first. A phone that comes back under a new contact after each reboot must not lock
        // its user out until the old bindings time out.
        while current.len() > cfg.max_contacts_per_user {
            let victim = current
                .iter()
                .enumerate()
                .filter(|(_, (_, touched))| !touched)
                .min_by_key(|(_, (b, _))| b.expires_at)
                .map(|(i, _)| i);
            let Some(i) = victim else {
                return Err(UpdateError::TooManyContacts);
            };
            let (old, _) = current.remove(i);
            changes.push(change(user, ChangeKind::Removed, &old));
        }
        Ok(())
    }
}

/// `Contact: *` (RFC 3261 §10.3 step 6): only with `Expires: 0`, and refused as a whole if any
/// binding of the same Call-ID has a CSeq at least as high.
fn remove_all(
    user: &str,
    header_expires: Option<u32>,
    call_id: &str,
    cseq: u32,
    current: &mut Vec<(Binding, bool)>,
    changes: &mut Vec<BindingChange>,
) -> Result<(), UpdateError> {
    if header_expires != Some(0) {
        return Err(UpdateError::Bad("Contact * Requires Expires: 0"));
    }
    if current
        .iter()
        .any(|(b, _)| b.call_id == call_id && cseq <= b.cseq)
    {
        return Err(UpdateError::OutOfOrder);
    }
    for (b, _) in current.drain(..) {
        changes.push(change(user, ChangeKind::Removed, &b));
    }
    Ok(())
}

fn change(user: &str, kind: ChangeKind, b: &Binding) -> BindingChange {
    BindingChange {
        user: user.to_string(),
        kind,
        contact: b.uri.clone(),
    }
}

fn prune_failures(failures: &mut HashMap<IpAddr, Failures>, now: Instant, window: Duration) {
    failures.retain(|_, f| {
        f.locked_until.is_some_and(|u| u > now)
            || now.saturating_duration_since(f.window_start) <= window
    });
}

/// Whole seconds, rounded up, so a live binding never shows `expires=0`.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Failures are counted per IPv4 address and per IPv6 /64 (one host usually holds a whole
/// /64, so counting per address would let it try 2^64 times as often).
fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::V6(seg.into())
        }
        v4 => v4,
    }
}

/// Whether a Contact names an existing binding: the same `+sip.instance` (the same device,
/// perhaps under a new address), or an equal URI.
fn same_binding(b: &Binding, uri: &Uri, instance: Option<&str>) -> bool {
    matches!((b.instance.as_deref(), instance), (Some(a), Some(c)) if a == c) || uri_eq(&b.uri, uri)
}

/// URI equality after RFC 3261 §19.1.4, as far as bindings need it: scheme, user, password,
/// host (case-insensitively), port, the parameters that must match when either side has them,
/// and the other parameters where both have them. URI headers are ignored.
fn uri_eq(a: &Uri, b: &Uri) -> bool {
    match (a, b) {
        (Uri::Sip(a), Uri::Sip(b)) => {
            let host_eq = match (&a.host, &b.host) {
                (crate::message::Host::Domain(x), crate::message::Host::Domain(y)) => {
                    x.eq_ignore_ascii_case(y)
                }
                (x, y) => x == y,
            };
            if a.secure != b.secure
                || a.user != b.user
                || a.password != b.password
                || !host_eq
                || a.port != b.port
            {
                return false;
            }
            for name in ["user", "ttl", "method", "maddr", "transport"] {
                let (x, y) = (a.params.get(name), b.params.get(name));
                let same = match (x, y) {
                    (None, None) => true,
                    (Some(Some(x)), Some(Some(y))) => x.eq_ignore_ascii_case(y),
                    (Some(None), Some(None)) => true,
                    _ => false,
                };
                if !same {
                    return false;
                }
            }
            a.params.0.iter().all(|(n, v)| match (v, b.params.get(n)) {
                (_, None) => true,
                (Some(x), Some(Some(y))) => x.eq_ignore_ascii_case(y),
                (None, Some(None)) => true,
                _ => false,
            })
        }
        (Uri::Tel(a), Uri::Tel(b)) => a == b,
        (
            Uri::Other {
                scheme: sa,
                rest: ra,
            },
            Uri::Other {
                scheme: sb,
                rest: rb,
            },
        ) => sa == sb && ra == rb,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{authorization_for, DigestChallenge};
    use crate::typed::parse_uri;
    use crate::Transport;

    const DOMAIN: &str = "hotline.test";

    fn secrets(user: &str) -> Option<Secret> {
        match user {
            "op1" => Some(Secret::Plain("pw1".into())),
            "op2" => Some(Secret::Plain("pw2".into())),
            _ => None,
        }
    }

    fn peer(addr: &str) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: addr.parse().unwrap(),
        }
    }

    fn phone() -> Peer {
        peer("192.0.2.10:5060")
    }

    fn config() -> RegistrarConfig {
        RegistrarConfig {
            lockout_threshold: 3,
            ..RegistrarConfig::new(DOMAIN)
        }
    }

    fn registrar(t0: Instant) -> Registrar {
        Registrar::new(config(), [42u8; 32], t0)
    }

    /// A REGISTER for `aor_user` with the given Contact values and Expires header.
    fn request(
        aor_user: &str,
        call_id: &str,
        cseq: u32,
        contacts: &[&str],
        expires: Option<u32>,
    ) -> Request {
        let mut r = Request::new(Method::Register, parse_uri("sip:hotline.test").unwrap());
        let h = &mut r.headers;
        h.push(
            HeaderName::Via,
            format!("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{call_id}{cseq}"),
        );
        h.push(HeaderName::MaxForwards, "70");
        h.push(
            HeaderName::From,
            format!("<sip:{aor_user}@{DOMAIN}>;tag=from{cseq}"),
        );
        h.push(HeaderName::To, format!("<sip:{aor_user}@{DOMAIN}>"));
        h.push(HeaderName::CallId, call_id);
        h.push(HeaderName::CSeq, format!("{cseq} REGISTER"));
        for c in contacts {
            h.push(HeaderName::Contact, *c);
        }
        if let Some(e) = expires {
            h.push(HeaderName::Expires, e.to_string());
        }
        r
    }

    /// A phone: answers challenges like a real one, counting nc per nonce.
    struct Phone {
        user: String,
        password: String,
        challenge: Option<String>,
        nc: u32,
        source: Peer,
    }

    impl Phone {
        fn new(user: &str, password: &str) -> Phone {
            Phone {
                user: user.into(),
                password: password.into(),
                challenge: None,
                nc: 0,
                source: phone(),
            }
        }

        fn sign(&mut self, req: &mut Request) {
            if let Some(ch) = &self.challenge {
                self.nc += 1;
                let v = authorization_for(
                    ch,
                    &req.method,
                    &req.uri.to_string(),
                    &self.user,
                    &self.password,
                    "0a4f113b",
                    self.nc,
                )
                .unwrap();
                req.headers.push(HeaderName::Authorization, v);
            }
        }

        /// Send, and on a 401 answer the challenge once, as phones do.
        fn send(&mut self, reg: &mut Registrar, now: Instant, req: &Request) -> RegisterResult {
            let mut first = req.clone();
            self.sign(&mut first);
            let res = reg.handle_register(now, self.source, &first, secrets);
            if res.response.status != 401 {
                return res;
            }
            self.learn(&res.response);
            let mut again = req.clone();
            self.sign(&mut again);
            reg.handle_register(now, self.source, &again, secrets)
        }

        fn learn(&mut self, r: &Response) {
            self.challenge = r
                .headers
                .get(&HeaderName::WwwAuthenticate)
                .map(str::to_string);
            self.nc = 0;
        }
    }

    fn contact_expires(r: &Response) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = r
            .headers
            .contacts()
            .unwrap()
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                (
                    c.uri.to_string(),
                    c.params.value("expires").unwrap().parse().unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn to_tag(r: &Response) -> Option<String> {
        r.headers.to_addr().unwrap().tag().map(str::to_string)
    }

    const C1: &str = "<sip:op1@192.0.2.10:5060>";
    const C2: &str = "<sip:op1@192.0.2.11:5062;transport=tcp>";

    #[test]
    fn challenge_then_register() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let req = request("op1", "c1", 1, &[C1], None);
        let first = reg.handle_register(t0, phone(), &req, secrets);
        assert_eq!(first.response.status, 401);
        let ch: Vec<&str> = first
            .response
            .headers
            .get_all(&HeaderName::WwwAuthenticate)
            .collect();
        assert_eq!(ch.len(), 2);
        assert!(ch[0].contains("algorithm=SHA-256"), "{}", ch[0]);
        assert!(ch[1].contains("algorithm=MD5"), "{}", ch[1]);
        assert_eq!(DigestChallenge::parse(ch[0]).unwrap().realm, DOMAIN);
        assert!(to_tag(&first.response).is_some());
        assert!(first.changes.is_empty());
        assert!(reg.lookup(t0, "op1").is_empty());

        let mut p = Phone::new("op1", "pw1");
        p.learn(&first.response);
        let mut signed = req.clone();
        p.sign(&mut signed);
        let ok = reg.handle_register(t0, phone(), &signed, secrets);
        assert_eq!(ok.response.status, 200);
        assert_eq!(ok.authenticated.as_deref(), Some("op1"));
        assert!(to_tag(&ok.response).is_some());
        assert_eq!(
            contact_expires(&ok.response),
            vec![("sip:op1@192.0.2.10:5060".to_string(), 3600)]
        );
        assert_eq!(
            ok.changes,
            vec![BindingChange {
                user: "op1".into(),
                kind: ChangeKind::Added,
                contact: parse_uri("sip:op1@192.0.2.10:5060").unwrap(),
            }]
        );
        let found = reg.lookup(t0, "op1");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].source, phone());
        assert_eq!(found[0].call_id, "c1");
        assert_eq!(found[0].cseq, 1);
        assert_eq!(found[0].expires_at, t0 + Duration::from_secs(3600));
        assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(3600)));
    }

    #[test]
    fn md5_answer_also_registers() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let req = request("op1", "c1", 1, &[C1], None);
        let first = reg.handle_register(t0, phone(), &req, secrets);
        let mut p = Phone::new("op1", "pw1");
        p.challenge = first
            .response
            .headers
            .get_all(&HeaderName::WwwAuthenticate)
            .nth(1)
            .map(str::to_string);
        let mut signed = req.clone();
        p.sign(&mut signed);
        assert!(signed
            .headers
            .get(&HeaderName::Authorization)
            .unwrap()
            .contains("algorithm=MD5"));
        let ok = reg.handle_register(t0, phone(), &signed, secrets);
        assert_eq!(ok.response.status, 200);
    }

    #[test]
    fn unknown_user_and_wrong_password_look_the_same() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let wrong =
            Phone::new("op1", "nope").send(&mut reg, t0, &request("op1", "a", 1, &[C1], None));
        let unknown =
            Phone::new("op9", "nope").send(&mut reg, t0, &request("op9", "a", 1, &[C1], None));
        let shape = |r: &RegisterResult| {
            let r = &r.response;
            (
                r.status,
                r.reason.clone(),
                r.headers.iter().map(|h| h.name.clone()).collect::<Vec<_>>(),
                r.headers
                    .get_all(&HeaderName::WwwAuthenticate)
                    .map(|v| DigestChallenge::parse(v).unwrap().stale)
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(wrong.response.status, 401);
        assert_eq!(shape(&wrong), shape(&unknown));
        assert!(reg.users().is_empty());
    }

    #[test]
    fn registering_someone_elses_login_is_forbidden() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut p = Phone::new("op1", "pw1");
        let r = p.send(&mut reg, t0, &request("op2", "c1", 1, &[C1], None));
        assert_eq!(r.response.status, 403);
        assert_eq!(r.authenticated.as_deref(), Some("op1"));
        assert!(reg.lookup(t0, "op2").is_empty());
        assert!(reg.lookup(t0, "op1").is_empty());
    }

    #[test]
    fn stale_nonce_gets_stale_challenge_and_phone_recovers() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut p = Phone::new("op1", "pw1");
        assert_eq!(
            p.send(&mut reg, t0, &request("op1", "c1", 1, &[C1], None))
                .response
                .status,
            200
        );
        // ten minutes later the cached nonce is past its 5-minute life
        let t1 = t0 + Duration::from_secs(600);
        let mut req = request("op1", "c1", 2, &[C1], None);
        p.sign(&mut req);
        let r = reg.handle_register(t1, phone(), &req, secrets);
        assert_eq!(r.response.status, 401);
        let ch = r
            .response
            .headers
            .get(&HeaderName::WwwAuthenticate)
            .unwrap();
        assert!(DigestChallenge::parse(ch).unwrap().stale, "{ch}");
        // a fresh answer goes through (and the stale one did not count as a failure)
        p.learn(&r.response);
        let mut req = request("op1", "c1", 3, &[C1], None);
        p.sign(&mut req);
        assert_eq!(
            reg.handle_register(t1, phone(), &req, secrets)
                .response
                .status,
            200
        );
        assert!(reg.failures.is_empty());
    }

    #[test]
    fn replayed_register_is_refused_with_stale_challenge() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut p = Phone::new("op1", "pw1");
        p.send(&mut reg, t0, &request("op1", "c1", 1, &[C1], None));
        let mut req = request("op1", "c1", 2, &[C1], None);
        p.sign(&mut req);
        assert_eq!(
            reg.handle_register(t0, phone(), &req, secrets)
                .response
                .status,
            200
        );
        // an attacker replays the captured request with a higher CSeq it cannot re-sign
        let mut replay = req.clone();
        replay.headers.set(HeaderName::CSeq, "3 REGISTER");
        let r = reg.handle_register(t0, peer("198.51.100.1:5060"), &replay, secrets);
        assert_eq!(r.response.status, 401);
        assert!(r
            .response
            .headers
            .get(&HeaderName::WwwAuthenticate)
            .unwrap()
            .contains("stale=true"));
        assert_eq!(reg.lookup(t0, "op1")[0].cseq, 2);
    }

    #[test]
    fn lockout_after_repeated_failures_then_recovery() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut bad = Phone::new("op1", "guess");
        for i in 0..3 {
            // one wrong answer per attempt (a challenge-less REGISTER is no failure)
            bad.challenge = None;
            let r = bad.send(&mut reg, t0, &request("op1", "c1", i + 1, &[C1], None));
            assert_eq!(r.response.status, 401, "attempt {i}");
        }
        // locked: even the right password is not looked at
        let mut good = Phone::new("op1", "pw1");
        let t1 = t0 + Duration::from_secs(60);
        let r = good.send(&mut reg, t1, &request("op1", "c2", 1, &[C1], None));
        assert_eq!(r.response.status, 503);
        assert_eq!(r.response.headers.get(&HeaderName::RetryAfter), Some("840"));
        assert!(r.authenticated.is_none());
        // another address is not affected
        let mut other = Phone::new("op2", "pw2");
        other.source = peer("192.0.2.99:5060");
        let r = other.send(
            &mut reg,
            t1,
            &request("op2", "c3", 1, &["<sip:op2@192.0.2.99>"], None),
        );
        assert_eq!(r.response.status, 200);
        // after the lock-out the phone behind the address gets in by itself
        let t2 = t0 + Duration::from_secs(900);
        let r = good.send(&mut reg, t2, &request("op1", "c2", 2, &[C1], None));
        assert_eq!(r.response.status, 200);
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_lock_out() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut bad = Phone::new("op1", "guess");
        for i in 0..6u32 {
            let t = t0 + Duration::from_secs(u64::from(i) * 200);
            bad.challenge = None;
            let r = bad.send(&mut reg, t, &request("op1", "c1", i + 1, &[C1], None));
            assert_eq!(r.response.status, 401, "attempt {i}");
        }
    }

    #[test]
    fn ipv6_sources_are_counted_per_64() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        for i in 1..=3 {
            let mut bad = Phone::new("op1", "guess");
            bad.source = peer(&format!("[2001:db8:1:2::{i}]:5060"));
            bad.send(&mut reg, t0, &request("op1", "c1", i, &[C1], None));
        }
        let mut good = Phone::new("op1", "pw1");
        good.source = peer("[2001:db8:1:2:ffff::1]:5060");
        let r = good.send(&mut reg, t0, &request("op1", "c9", 1, &[C1], None));
        assert_eq!(r.response.status, 503);
        good.source = peer("[2001:db8:1:3::1]:5060");
        let r = good.send(&mut reg, t0, &request("op1", "c9", 1, &[C1], None));
        assert_eq!(r.response.status, 200);
    }

    #[test]
    fn expires_from_contact_header_or_default_capped_and_min() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut p = Phone::new("op1", "pw1");
        let r = p.send(
            &mut reg,
            t0,
            &request(
                "op1",
                "c1",
                1,
                &[
                    "<sip:op1@192.0.2.10:5060>;expires=120",
                    "<sip:op1@192.0.2.10:5061>",
                    "<sip:op1@192.0.2.10:5062>;expires=99999",
                ],
                Some(600),
            ),
        );
        assert_eq!(r.response.status, 200);
        assert_eq!(
            contact_expires(&r.response),
            vec![
                ("sip:op1@192.0.2.10:5060".into(), 120),
                ("sip:op1@192.0.2.10:5061".into(), 600),
                ("sip:op1@192.0.2.10:5062".into(), 3600),
            ]
        );
        // no Expires anywhere: the default
        let r = p.send(
            &mut reg,
            t0,
            &request("op1", "c2", 1, &["<sip:op1@192.0.2.10:5063>"], None),
        );
        assert!(contact_expires(&r.response).contains(&("sip:op1@192.0.2.10:5063".into(), 3600)));
        // too brief: 423 with Min-Expires, nothing changed
        let r = p.send(
            &mut reg,
            t0,
            &request("op1", "c3", 1, &["<sip:op1@192.0.2.10:5064>", C2], Some(30)),
        );
        assert_eq!(r.response.status, 423);
        assert_eq!(r.response.headers.get(&HeaderName::MinExpires), Some("60"));
        assert!(r.changes.is_empty());
        assert_eq!(reg.lookup(t0, "op1").len(), 4);
    }

    #[test]
    fn remaining_time_shown_in_later_responses_and_query() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut p = Phone::new("op1", "pw1");
        p.send(&mut reg, t0, &request("op1", "c1", 1, &[C1], Some(600)));
        let t1 = t0 + Duration::from_millis(100_500);
        let r = p.send(&mut reg, t1, &request("op1", "c1", 2, &[], None));
        assert_eq!(r.response.status, 200);
        assert!(r.changes.is_empty());
        // 499.5 s left, shown rounded up
        assert_eq!(
            contact_expires(&r.response),
            vec![("sip:op1@192.0.2.10:5060".into(), 500)]
        );
    }

    #[test]
    fn several_contacts_removal_and_refresh() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut p = Phone::new("op1", "pw1");
        let r = p.send(&mut reg, t0, &request("op1", "c1", 1, &[C1, C2], None));
        assert_eq!(r.changes.len(), 2);
        assert_eq!(reg.lookup(t0, "op1").len(), 2);
        // refresh one (same URI, different spelling of the host case) and remove the other
        let t1 = t0 + Duration::from_secs(10);
        let r = p.send(
            &mut reg,
            t1,
            &request(
                "op1",
                "c1",
                2,
                &[
                    "<sip:op1@192.0.2.10:5060>;expires=300",
                    "<sip:op1@192.0.2.11:5062;transport=TCP>;expires=0",
                ],
                None,
            ),
        );
        assert_eq!(r.response.status, 200);
        let kinds: Vec<ChangeKind> = r.changes.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, vec![ChangeKind::Refreshed, ChangeKind::Removed]);
        assert_eq!(
            contact_expires(&r.response),
            vec![("sip:op1@192.0.2.10:5060".into(), 300)]
        );
        let b = reg.lookup(t1, "op1");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].cseq, 2);
        assert_eq!(b[0].expires_at, t1 + Duration::from_secs(300));
    }

    #[test]
    fn star_removes_all_only_with_expires_zero() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut p = Phone::new("op1", "pw1");
        p.send(&mut reg, t0, &request("op1", "c1", 1, &[C1, C2], None));
        let r = p.send(&mut reg, t0, &request("op1", "c1", 2, &["*"], Some(60)));
        assert_eq!(r.response.status, 400);
        let r = p.send(&mut reg, t0, &request("op1", "c1", 3, &["*"], None));
        assert_eq!(r.response.status, 400);
        assert_eq!(reg.lookup(t0, "op1").len(), 2);
        let r = p.send(&mut reg, t0, &request("op1", "c9", 1, &["*"], Some(0)));
        assert_eq!(r.response.status, 200);
        assert_eq!(r.changes.len(), 2);
        assert!(r.changes.iter().all(|c| c.kind == ChangeKind::Removed));
        assert!(r.response.headers.get(&HeaderName::Contact).is_none());
        assert!(reg.lookup(t0, "op1").is_empty());
        assert!(reg.users().is_empty());
        assert_eq!(reg.poll_timeout(), None);
    }

    #[test]
    fn star_out_of_order_is_refused() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut p = Phone::new("op1", "pw1");
        p.send(&mut reg, t0, &request("op1", "c1", 5, &[C1], None));
        let r = p.send(&mut reg, t0, &request("op1", "c1", 5, &["*"], Some(0)));
        assert_eq!(r.response.status, 500);
        assert_eq!(reg.lookup(t0, "op1").len(), 1);
    }

    #[test]
    fn out_of_order_register_is_refused_and_changes_nothing() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut p = Phone::new("op1", "pw1");
        p.send(&mut reg, t0, &request("op1", "c1", 5, &[C1], Some(600)));
        for cseq in [4, 5] {
            let r = p.send(
                &mut reg,
                t0,
                &request("op1", "c1", cseq, &[C2, C1], Some(0)),
            );
            assert_eq!(r.response.status, 500, "cseq {cseq}");
            assert!(r.changes.is_empty());
        }
        let b = reg.lookup(t0, "op1");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].cseq, 5);
        // another Call-ID (a rebooted phone) may start low
        let r = p.send(&mut reg, t0, &request("op1", "c2", 1, &[C1], Some(600)));
        assert_eq!(r.response.status, 200);
        assert_eq!(reg.lookup(t0, "op1")[0].call_id, "c2");
    }

    #[test]
    fn max_contacts_evicts_the_soonest_to_expire() {
        let t0 = Instant::now();
        let mut reg = Registrar::new(
            RegistrarConfig {
                max_contacts_per_user: 2,
                ..config()
            },
            [1u8; 32],
            t0,
        );
        let mut p = Phone::new("op1", "pw1");
        p.send(
            &mut reg,
            t0,
            &request("op1", "a", 1, &["<sip:op1@192.0.2.1>"], Some(600)),
        );
        p.send(
            &mut reg,
            t0,
            &request("op1", "b", 1, &["<sip:op1@192.0.2.2>"], Some(300)),
        );
        let r = p.send(
            &mut reg,
            t0,
            &request("op1", "c", 1, &["<sip:op1@192.0.2.3>"], Some(900)),
        );
        assert_eq!(r.response.status, 200);
        assert!(r.changes.contains(&BindingChange {
            user: "op1".into(),
            kind: ChangeKind::Removed,
            contact: parse_uri("sip:op1@192.0.2.2").unwrap(),
        }));
        let mut left: Vec<String> = reg
            .lookup(t0, "op1")
            .iter()
            .map(|b| b.uri.to_string())
            .collect();
        left.sort();
        assert_eq!(left, vec!["sip:op1@192.0.2.1", "sip:op1@192.0.2.3"]);
        // one request naming more than the limit is refused whole
        let r = p.send(
            &mut reg,
            t0,
            &request(
                "op1",
                "d",
                1,
                &[
                    "<sip:op1@192.0.2.4>",
                    "<sip:op1@192.0.2.5>",
                    "<sip:op1@192.0.2.6>",
                ],
                None,
            ),
        );
        assert_eq!(r.response.status, 403);
        assert_eq!(reg.lookup(t0, "op1").len(), 2);
    }

    #[test]
    fn same_instance_replaces_the_old_contact() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut p = Phone::new("op1", "pw1");
        let inst = "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"";
        p.send(
            &mut reg,
            t0,
            &request(
                "op1",
                "a",
                1,
                &[&format!("<sip:op1-0x1@192.0.2.10:5060>;{inst}")],
                None,
            ),
        );
        // after a reboot: new port, new Call-ID, same device
        let r = p.send(
            &mut reg,
            t0,
            &request(
                "op1",
                "b",
                1,
                &[&format!("<sip:op1-0x2@192.0.2.10:5070>;{inst}")],
                None,
            ),
        );
        assert_eq!(r.response.status, 200);
        assert_eq!(r.changes[0].kind, ChangeKind::Refreshed);
        let b = reg.lookup(t0, "op1");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].uri.to_string(), "sip:op1-0x2@192.0.2.10:5070");
        assert_eq!(
            b[0].instance.as_deref(),
            Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>")
        );
    }

    #[test]
    fn lookup_orders_by_q_then_recency_and_expire_reports() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut p = Phone::new("op1", "pw1");
        p.send(
            &mut reg,
            t0,
            &request("op1", "a", 1, &["<sip:op1@192.0.2.1>;q=0.5"], Some(100)),
        );
        let t1 = t0 + Duration::from_secs(1);
        p.send(
            &mut reg,
            t1,
            &request("op1", "b", 1, &["<sip:op1@192.0.2.2>;q=0.5"], Some(200)),
        );
        p.send(
            &mut reg,
            t1,
            &request("op1", "c", 1, &["<sip:op1@192.0.2.3>;q=0.9"], Some(300)),
        );
        let order: Vec<String> = reg
            .lookup(t1, "op1")
            .iter()
            .map(|b| b.uri.to_string())
            .collect();
        assert_eq!(
            order,
            vec![
                "sip:op1@192.0.2.3",
                "sip:op1@192.0.2.2",
                "sip:op1@192.0.2.1"
            ]
        );
        assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(100)));
        // nothing is due yet
        assert!(reg.expire(t0 + Duration::from_secs(99)).is_empty());
        let t2 = t0 + Duration::from_secs(100);
        assert_eq!(reg.lookup(t2, "op1").len(), 2);
        let gone = reg.expire(t2);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].kind, ChangeKind::Expired);
        assert_eq!(gone[0].contact.to_string(), "sip:op1@192.0.2.1");
        assert_eq!(reg.poll_timeout(), Some(t1 + Duration::from_secs(200)));
        let users = reg.users();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].0, "op1");
        assert_eq!(users[0].1.len(), 2);
        reg.expire(t2 + Duration::from_secs(1000));
        assert!(reg.users().is_empty());
        assert_eq!(reg.poll_timeout(), None);
    }

    #[test]
    fn malformed_requests_get_400_and_extensions_420() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut p = Phone::new("op1", "pw1");
        let mut req = request("op1", "c1", 1, &[C1], None);
        req.headers.set(HeaderName::CSeq, "1 INVITE");
        assert_eq!(p.send(&mut reg, t0, &req).response.status, 400);
        let mut req = request("op1", "c1", 1, &[C1], None);
        req.headers.set(HeaderName::Expires, "soon");
        assert_eq!(p.send(&mut reg, t0, &req).response.status, 400);
        let req = request("op1", "c1", 1, &["<sip:op1@192.0.2.1>;expires=x"], None);
        assert_eq!(p.send(&mut reg, t0, &req).response.status, 400);
        let mut req = request("op1", "c1", 1, &[C1], None);
        req.headers.push(HeaderName::Require, "gruu");
        let r = p.send(&mut reg, t0, &req);
        assert_eq!(r.response.status, 420);
        assert_eq!(
            r.response.headers.get(&HeaderName::Unsupported),
            Some("gruu")
        );
        let mut req = request("op1", "c1", 1, &[C1], None);
        req.headers.set(HeaderName::To, "<tel:+123>");
        assert_eq!(p.send(&mut reg, t0, &req).response.status, 404);
        let mut req = request("op1", "c1", 1, &[C1], None);
        req.method = Method::Options;
        let r = p.send(&mut reg, t0, &req);
        assert_eq!(r.response.status, 405);
        assert_eq!(r.response.headers.get(&HeaderName::Allow), Some("REGISTER"));
        assert!(reg.users().is_empty());
    }

    #[test]
    fn expired_bindings_do_not_block_or_count() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut p = Phone::new("op1", "pw1");
        p.send(&mut reg, t0, &request("op1", "c1", 7, &[C1], Some(60)));
        // without expire() having run, a same-Call-ID REGISTER with a low CSeq after the
        // binding timed out is a new registration, not out of order
        let t1 = t0 + Duration::from_secs(61);
        let r = p.send(&mut reg, t1, &request("op1", "c1", 1, &[C1], Some(60)));
        assert_eq!(r.response.status, 200);
        let kinds: Vec<ChangeKind> = r.changes.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, vec![ChangeKind::Expired, ChangeKind::Added]);
    }
}
