//! Digest authentication as SIP uses it (RFC 3261 §22, RFC 7616, RFC 8760), both sides.
//!
//! The server side ([`DigestServer`]) keeps no per-challenge state: a nonce is the time it was
//! issued (relative to an epoch the caller chose), a counter that keeps two nonces of the same
//! millisecond apart, and an HMAC-SHA256 tag over both under a secret key. Any nonce whose tag
//! checks out is one we issued, and its age is read from the nonce itself. The only state is the
//! nonce-count table that refuses replays; it holds only nonces that authenticated successfully
//! and drops them once they are past their lifetime (after which they are refused as stale
//! anyway), so it cannot grow without bound.
//!
//! The client side ([`authorization_for`]) answers a `WWW-Authenticate` challenge, and
//! [`answer_challenge`] picks the challenge of a 401 or 407 and names the header the retried
//! request carries (the daemon's calls out through a trunk use it).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::message::{HeaderName, Method, Response};

type HmacSha256 = Hmac<Sha256>;

/// The digest algorithms we speak. RFC 8760 adds SHA-256 to SIP; MD5 stays for the phones that
/// know nothing else. The `-sess` variants and SHA-512-256 are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// Case-insensitive (`md5` and `MD5` are the same algorithm, RFC 7616 §3.3).
    pub fn parse(s: &str) -> Option<Algorithm> {
        if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// `H(data)` as lowercase hex.
    pub fn hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(data)),
            Algorithm::Sha256 => hex::encode(Sha256::digest(data)),
        }
    }
}

/// What the operator store holds for a user. Stored HA1 values (`H(user:realm:password)` in hex)
/// let the store avoid plain passwords, at the price of being tied to the realm; a user whose
/// store lacks the HA1 for the algorithm a client picked fails like a wrong password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Plain(String),
    Ha1 {
        md5: Option<String>,
        sha256: Option<String>,
    },
}

impl Secret {
    /// `HA1 = H(username:realm:password)` for `algorithm`, lowercase hex.
    pub fn ha1(&self, algorithm: Algorithm, username: &str, realm: &str) -> Option<String> {
        match self {
            Secret::Plain(password) => Some(ha1(algorithm, username, realm, password)),
            Secret::Ha1 { md5, sha256 } => match algorithm {
                Algorithm::Md5 => md5.as_ref(),
                Algorithm::Sha256 => sha256.as_ref(),
            }
            .map(|h| h.trim().to_ascii_lowercase()),
        }
    }
}

/// `H(username:realm:password)`.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hex(format!("{username}:{realm}:{password}").as_bytes())
}

/// Why a `Digest …` header value could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("not a Digest header")]
    NotDigest,
    #[error("unterminated quoted string in Digest parameters")]
    UnterminatedQuote,
    #[error("Digest parameter without '='")]
    ExpectedEquals,
    #[error("Digest parameters not separated by ','")]
    ExpectedComma,
    #[error("Digest parameter without a name")]
    EmptyName,
    #[error("Digest parameter {0} given twice")]
    DuplicateParam(String),
    #[error("Digest parameter {0} missing")]
    MissingParam(&'static str),
    #[error("bad nonce count")]
    BadNonceCount,
    #[error("unsupported digest algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("unsupported qop {0}")]
    UnsupportedQop(String),
}

/// Split `Digest k=v, k="v", …` into the scheme's parameters: names lowercased, quoted values
/// unquoted and unescaped. Empty list elements (`a=1, , b=2`) are skipped (RFC 7235 §2.1 list
/// rule); a parameter given twice is an error, since which one counts would be a guess.
pub fn parse_digest_params(value: &str) -> Result<Vec<(String, String)>, AuthError> {
    let value = value.trim_start();
    let scheme_end = value
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(value.len());
    let (scheme, rest) = value.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthError::NotDigest);
    }
    let mut params: Vec<(String, String)> = Vec::new();
    let mut chars = rest.chars().peekable();
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
    };
    loop {
        skip_ws(&mut chars);
        match chars.peek() {
            None => break,
            Some(',') => {
                chars.next();
                continue;
            }
            Some(_) => {}
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_ascii_whitespace() {
                break;
            }
            name.push(c.to_ascii_lowercase());
            chars.next();
        }
        if name.is_empty() {
            return Err(AuthError::EmptyName);
        }
        skip_ws(&mut chars);
        if chars.next() != Some('=') {
            return Err(AuthError::ExpectedEquals);
        }
        skip_ws(&mut chars);
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(e) => val.push(e),
                        None => return Err(AuthError::UnterminatedQuote),
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => val.push(c),
                }
            }
            if !closed {
                return Err(AuthError::UnterminatedQuote);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_ascii_whitespace() {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        skip_ws(&mut chars);
        match chars.next() {
            None | Some(',') => {}
            Some(_) => return Err(AuthError::ExpectedComma),
        }
        if params.iter().any(|(n, _)| *n == name) {
            return Err(AuthError::DuplicateParam(name));
        }
        params.push((name, val));
    }
    Ok(params)
}

fn take(params: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let pos = params.iter().position(|(n, _)| n == name)?;
    Some(params.swap_remove(pos).1)
}

/// The parameters of an `Authorization` (or `Proxy-Authorization`) header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    /// As received; compared case-insensitively.
    pub response: String,
    /// MD5 when the header names none (RFC 7616 §3.4).
    pub algorithm: Algorithm,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
    /// `auth`, or `None` for the RFC 2069 form without qop.
    pub qop: Option<String>,
    pub nc: Option<u32>,
}

impl DigestCredentials {
    pub fn parse(value: &str) -> Result<DigestCredentials, AuthError> {
        let mut p = parse_digest_params(value)?;
        let algorithm = match take(&mut p, "algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(&a).ok_or(AuthError::UnsupportedAlgorithm(a))?,
        };
        let nc = match take(&mut p, "nc") {
            None => None,
            Some(nc) => {
                // 8LHEX (RFC 7616 §3.4); be lenient about the width, not about the digits.
                if nc.is_empty() || nc.len() > 8 || !nc.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(AuthError::BadNonceCount);
                }
                Some(u32::from_str_radix(&nc, 16).map_err(|_| AuthError::BadNonceCount)?)
            }
        };
        let mut need = |name: &'static str| take(&mut p, name).ok_or(AuthError::MissingParam(name));
        let username = need("username")?;
        let realm = need("realm")?;
        let nonce = need("nonce")?;
        let uri = need("uri")?;
        let response = need("response")?;
        Ok(DigestCredentials {
            username,
            realm,
            nonce,
            uri,
            response,
            algorithm,
            cnonce: take(&mut p, "cnonce"),
            opaque: take(&mut p, "opaque"),
            qop: take(&mut p, "qop"),
            nc,
        })
    }
}

/// The parameters of a `WWW-Authenticate` (or `Proxy-Authenticate`) challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChallenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// The offered qop values (`qop="auth,auth-int"`), empty for an RFC 2069 challenge.
    pub qop: Vec<String>,
    pub stale: bool,
}

impl DigestChallenge {
    pub fn parse(value: &str) -> Result<DigestChallenge, AuthError> {
        let mut p = parse_digest_params(value)?;
        let algorithm = match take(&mut p, "algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(&a).ok_or(AuthError::UnsupportedAlgorithm(a))?,
        };
        Ok(DigestChallenge {
            realm: take(&mut p, "realm").ok_or(AuthError::MissingParam("realm"))?,
            nonce: take(&mut p, "nonce").ok_or(AuthError::MissingParam("nonce"))?,
            opaque: take(&mut p, "opaque"),
            algorithm,
            qop: take(&mut p, "qop")
                .map(|q| {
                    q.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            stale: take(&mut p, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }
}

/// Write `s` as a quoted-string, escaping `"` and `\`.
fn quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// The request-digest (RFC 7616 §3.4.1, RFC 2069 when `qop` is `None`), lowercase hex.
pub fn request_digest(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    qop: Option<(&str, u32, &str)>,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = algorithm.hex(format!("{method}:{uri}").as_bytes());
    match qop {
        Some((cnonce, nc, qop)) => {
            algorithm.hex(format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}").as_bytes())
        }
        None => algorithm.hex(format!("{ha1}:{nonce}:{ha2}").as_bytes()),
    }
}

/// Answer a `WWW-Authenticate` challenge: the value of the `Authorization` header for a request
/// with `method` and request-URI `uri`. Uses `qop=auth` when the challenge offers it and the
/// RFC 2069 form when it offers no qop at all; a challenge offering only `auth-int` is refused.
pub fn authorization_for(
    challenge_value: &str,
    method: &Method,
    uri: &str,
    user: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String, AuthError> {
    let ch = DigestChallenge::parse(challenge_value)?;
    let use_qop = if ch.qop.is_empty() {
        false
    } else if ch.qop.iter().any(|q| q.eq_ignore_ascii_case("auth")) {
        true
    } else {
        return Err(AuthError::UnsupportedQop(ch.qop.join(",")));
    };
    let ha1 = ha1(ch.algorithm, user, &ch.realm, password);
    let response = request_digest(
        ch.algorithm,
        &ha1,
        &ch.nonce,
        use_qop.then_some((cnonce, nc, "auth")),
        method.as_str(),
        uri,
    );
    let mut out = String::from("Digest username=");
    quoted(&mut out, user);
    out.push_str(", realm=");
    quoted(&mut out, &ch.realm);
    out.push_str(", nonce=");
    quoted(&mut out, &ch.nonce);
    out.push_str(", uri=");
    quoted(&mut out, uri);
    out.push_str(", response=");
    quoted(&mut out, &response);
    let _ = write!(out, ", algorithm={}", ch.algorithm.as_str());
    if use_qop {
        out.push_str(", cnonce=");
        quoted(&mut out, cnonce);
        let _ = write!(out, ", qop=auth, nc={nc:08x}");
    }
    if let Some(opaque) = &ch.opaque {
        out.push_str(", opaque=");
        quoted(&mut out, opaque);
    }
    Ok(out)
}

/// The credentials a request retried after `response` (a 401 or 407) carries: the header name
/// (`Authorization` for 401, `Proxy-Authorization` for 407, RFC 3261 §22.2–22.3) and its value
/// for the request's `method` and Request-URI `uri`. A response may offer several challenges
/// (one per algorithm): the first we can answer is used. `nc` counts the requests made with
/// the same nonce (1 for a fresh challenge).
pub fn answer_challenge(
    response: &Response,
    method: &Method,
    uri: &str,
    user: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<(HeaderName, String), AuthError> {
    let (challenge, credentials) = match response.status {
        407 => (
            HeaderName::ProxyAuthenticate,
            HeaderName::ProxyAuthorization,
        ),
        _ => (HeaderName::WwwAuthenticate, HeaderName::Authorization),
    };
    let mut last = AuthError::NotDigest;
    for value in response.headers.get_all(&challenge) {
        match authorization_for(value, method, uri, user, password, cnonce, nc) {
            Ok(v) => return Ok((credentials, v)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Why credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// The header could not be parsed.
    Malformed(AuthError),
    /// The credentials are for another realm.
    WrongRealm,
    /// The nonce is not one we issued (or was altered), or the opaque does not match.
    BadNonce,
    /// A qop other than `auth` (auth-int is not offered), or qop without cnonce/nc.
    BadQop,
    /// Wrong password *or* unknown user: deliberately one variant, so nothing downstream can
    /// tell the two apart.
    BadResponse,
    /// A correct response whose (nonce, nc) was already used, or whose nc did not increase.
    /// A replay proves nothing about the sender; a caller should answer it with a fresh
    /// challenge marked `stale=true`, since a real client that reused a nonce only needs a new
    /// one and must not prompt its user for the password.
    Replay,
}

/// The result of checking credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Ok {
        user: String,
    },
    /// A correct response with a nonce past its lifetime: challenge again with `stale=true`.
    Stale,
    Failed(AuthFailure),
}

/// Nonce payload: issue time in milliseconds since the epoch, and a counter.
const NONCE_PAYLOAD: usize = 16;
/// Bytes of HMAC-SHA256 kept in the nonce.
const NONCE_TAG: usize = 16;
/// Upper bound on remembered nonces; see [`DigestServer::remember`].
const MAX_TRACKED_NONCES: usize = 65_536;

/// Use of one nonce so far.
#[derive(Debug, Clone, Copy)]
struct NonceUse {
    /// Issue time, ms since the epoch (to expire the entry).
    issued_ms: u64,
    /// The highest nc accepted, or `None` after an RFC 2069 (no-qop) use, which may not recur.
    highest_nc: Option<u32>,
}

/// Server side of digest authentication for one realm.
#[derive(Debug)]
pub struct DigestServer {
    realm: String,
    key: [u8; 32],
    nonce_lifetime: Duration,
    epoch: Instant,
    counter: AtomicU64,
    opaque: String,
    used: HashMap<(u64, u64), NonceUse>,
    /// Nonces issued at or before this time (ms since epoch) may have been evicted from `used`
    /// early; they are answered as stale rather than trusted afresh.
    evicted_up_to: Option<u64>,
    last_prune_ms: u64,
    /// Challenges offered, most preferred first (RFC 8760 §2.4).
    algorithms: Vec<Algorithm>,
}

impl DigestServer {
    /// `secret_key` signs nonces (use 32 random bytes per daemon start, or a configured key so
    /// nonces survive a restart); `epoch` is the origin of nonce timestamps.
    pub fn new(
        realm: String,
        secret_key: [u8; 32],
        nonce_lifetime: Duration,
        epoch: Instant,
    ) -> DigestServer {
        let mut mac = mac_with(&secret_key);
        mac.update(b"opaque:");
        mac.update(realm.as_bytes());
        let opaque = hex::encode(&mac.finalize().into_bytes()[..16]);
        DigestServer {
            realm,
            key: secret_key,
            nonce_lifetime,
            epoch,
            counter: AtomicU64::new(0),
            opaque,
            used: HashMap::new(),
            evicted_up_to: None,
            last_prune_ms: 0,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        }
    }

    /// Which challenges to offer, in order. Many deployed phones (and SIPp 3.6) answer only the
    /// first challenge and only know MD5, so a hotline may need MD5 first. An empty list keeps
    /// the default (SHA-256, then MD5).
    pub fn set_algorithms(&mut self, algorithms: &[Algorithm]) {
        if !algorithms.is_empty() {
            self.algorithms = algorithms.to_vec();
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn ms_since_epoch(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn nonce_tag(&self, payload: &[u8]) -> HmacSha256 {
        let mut mac = mac_with(&self.key);
        mac.update(b"nonce:");
        mac.update(payload);
        mac
    }

    /// A fresh nonce for `now`.
    pub fn nonce(&self, now: Instant) -> String {
        let ms = self.ms_since_epoch(now);
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut payload = [0u8; NONCE_PAYLOAD];
        payload[..8].copy_from_slice(&ms.to_be_bytes());
        payload[8..].copy_from_slice(&count.to_be_bytes());
        let tag = self.nonce_tag(&payload).finalize().into_bytes();
        let mut out = hex::encode(payload);
        out.push_str(&hex::encode(&tag[..NONCE_TAG]));
        out
    }

    /// Decode and authenticate a nonce: `(issued_ms, counter)`.
    fn open_nonce(&self, nonce: &str) -> Option<(u64, u64)> {
        let raw = hex::decode(nonce).ok()?;
        if raw.len() != NONCE_PAYLOAD + NONCE_TAG {
            return None;
        }
        let (payload, tag) = raw.split_at(NONCE_PAYLOAD);
        // constant-time comparison inside `hmac`
        self.nonce_tag(payload).verify_truncated_left(tag).ok()?;
        let ms = u64::from_be_bytes(payload[..8].try_into().ok()?);
        let count = u64::from_be_bytes(payload[8..].try_into().ok()?);
        Some((ms, count))
    }

    /// `WWW-Authenticate` values: SHA-256 first, then MD5 (RFC 8760 §2.4: in order of
    /// preference), one shared nonce, `qop="auth"`, and `stale=true` when asked.
    pub fn challenge(&self, now: Instant, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now);
        self.algorithms
            .iter()
            .map(|alg| {
                let mut v = String::from("Digest realm=");
                quoted(&mut v, &self.realm);
                v.push_str(", nonce=");
                quoted(&mut v, &nonce);
                v.push_str(", opaque=");
                quoted(&mut v, &self.opaque);
                let _ = write!(v, ", algorithm={}, qop=\"auth\"", alg.as_str());
                if stale {
                    v.push_str(", stale=true");
                }
                v
            })
            .collect()
    }

    /// Check an `Authorization` header value for a request with `method`. `lookup` gives the
    /// secret of a username, `None` for an unknown user, which then costs the same hashing and
    /// yields the same outcome as a wrong password.
    pub fn verify(
        &mut self,
        now: Instant,
        method: &Method,
        credentials_header_value: &str,
        lookup: impl Fn(&str) -> Option<Secret>,
    ) -> AuthOutcome {
        let creds = match DigestCredentials::parse(credentials_header_value) {
            Ok(c) => c,
            Err(e) => return AuthOutcome::Failed(AuthFailure::Malformed(e)),
        };
        if creds.realm != self.realm {
            return AuthOutcome::Failed(AuthFailure::WrongRealm);
        }
        let Some((issued_ms, count)) = self.open_nonce(&creds.nonce) else {
            return AuthOutcome::Failed(AuthFailure::BadNonce);
        };
        if creds.opaque.as_ref().is_some_and(|o| *o != self.opaque) {
            return AuthOutcome::Failed(AuthFailure::BadNonce);
        }
        let qop = match (creds.qop.as_deref(), creds.cnonce.as_deref(), creds.nc) {
            (None, _, _) => None,
            (Some(q), Some(cnonce), Some(nc)) if q.eq_ignore_ascii_case("auth") && nc > 0 => {
                Some((cnonce, nc, q))
            }
            _ => return AuthOutcome::Failed(AuthFailure::BadQop),
        };

        // Unknown users and users without an HA1 for this algorithm get a decoy HA1 computed
        // the same way a plain password's is, so timing and outcome match a wrong password.
        let secret = lookup(&creds.username);
        let known_ha1 = secret
            .as_ref()
            .and_then(|s| s.ha1(creds.algorithm, &creds.username, &self.realm));
        let decoy = ha1(creds.algorithm, &creds.username, &self.realm, "\u{0}decoy");
        let (ha1_hex, real) = match known_ha1 {
            Some(h) => (h, true),
            None => (decoy, false),
        };
        let expected = request_digest(
            creds.algorithm,
            &ha1_hex,
            &creds.nonce,
            qop,
            method.as_str(),
            &creds.uri,
        );
        let given = creds.response.to_ascii_lowercase();
        let matches = constant_time_eq(expected.as_bytes(), given.as_bytes());
        if !(matches & real) {
            return AuthOutcome::Failed(AuthFailure::BadResponse);
        }

        let now_ms = self.ms_since_epoch(now);
        let lifetime_ms = u64::try_from(self.nonce_lifetime.as_millis()).unwrap_or(u64::MAX);
        // A nonce "from the future" was issued under another epoch (a restart with the same
        // key): its age is unknown, so it is as good as stale.
        if issued_ms > now_ms || now_ms - issued_ms > lifetime_ms {
            return AuthOutcome::Stale;
        }
        self.prune(now_ms, lifetime_ms);
        let key = (issued_ms, count);
        match self.used.get_mut(&key) {
            Some(u) => match (u.highest_nc, qop) {
                (Some(highest), Some((_, nc, _))) if nc > highest => u.highest_nc = Some(nc),
                _ => return AuthOutcome::Failed(AuthFailure::Replay),
            },
            None => {
                if self.evicted_up_to.is_some_and(|e| issued_ms <= e) {
                    return AuthOutcome::Failed(AuthFailure::Replay);
                }
                self.remember(
                    key,
                    NonceUse {
                        issued_ms,
                        highest_nc: qop.map(|(_, nc, _)| nc),
                    },
                );
            }
        }
        AuthOutcome::Ok {
            user: creds.username,
        }
    }

    /// Drop nonce uses past their lifetime: such nonces are answered as stale before the
    /// table is consulted.
    /// Runs at most every half lifetime (or when the table is half full), so the table holds
    /// at most about one and a half lifetimes' worth of successful authentications.
    fn prune(&mut self, now_ms: u64, lifetime_ms: u64) {
        let due = now_ms.saturating_sub(self.last_prune_ms) >= lifetime_ms / 2;
        if due || self.used.len() >= MAX_TRACKED_NONCES / 2 {
            let cutoff = now_ms.saturating_sub(lifetime_ms);
            self.used.retain(|_, u| u.issued_ms >= cutoff);
            self.last_prune_ms = now_ms;
        }
    }

    /// Record a nonce use. When the table is full even after pruning, the oldest half is
    /// forgotten and every nonce that old or older is refused from then on (as a replay, so the
    /// client gets a fresh nonce): memory stays bounded without letting a forgotten nonce be
    /// replayed.
    fn remember(&mut self, key: (u64, u64), u: NonceUse) {
        if self.used.len() >= MAX_TRACKED_NONCES {
            let mut times: Vec<u64> = self.used.values().map(|u| u.issued_ms).collect();
            times.sort_unstable();
            if let Some(&median) = times.get(times.len() / 2) {
                self.used.retain(|_, u| u.issued_ms > median);
                self.evicted_up_to = Some(self.evicted_up_to.map_or(median, |e| e.max(median)));
            }
        }
        self.used.insert(key, u);
    }

    /// How many nonce uses are remembered (for tests and metrics).
    pub fn tracked_nonces(&self) -> usize {
        self.used.len()
    }
}

fn mac_with(key: &[u8; 32]) -> HmacSha256 {
    // HMAC accepts keys of any length; 32 bytes can never be refused.
    match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

/// Compare without an early exit, so the time taken does not reveal how many leading
/// characters of a guessed response were right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const REALM: &str = "http-auth@example.org";
    const NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
    const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn get() -> Method {
        Method::Extension("GET".into())
    }

    fn rfc7616_challenge(alg: &str) -> String {
        format!(
            "Digest\r\n realm=\"{REALM}\",\r\n qop=\"auth, auth-int\",\r\n algorithm={alg},\r\n \
             nonce=\"{NONCE}\",\r\n opaque=\"{OPAQUE}\""
        )
        .replace("\r\n", "")
    }

    fn response_of(header: &str) -> String {
        DigestCredentials::parse(header).unwrap().response
    }

    #[test]
    fn rfc7616_3_9_1_sha256_vector() {
        let h = authorization_for(
            &rfc7616_challenge("SHA-256"),
            &get(),
            "/dir/index.html",
            "Mufasa",
            "Circle of Life",
            CNONCE,
            1,
        )
        .unwrap();
        assert_eq!(
            response_of(&h),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let c = DigestCredentials::parse(&h).unwrap();
        assert_eq!(c.nc, Some(1));
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert_eq!(c.opaque.as_deref(), Some(OPAQUE));
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert!(h.contains("nc=00000001"), "{h}");
    }

    fn challenge_response(status: u16, header: HeaderName, values: &[String]) -> Response {
        let mut r = Response {
            status,
            reason: crate::message::reason_phrase(status).into(),
            headers: crate::message::Headers::new(),
            body: Vec::new(),
        };
        for v in values {
            r.headers.push(header.clone(), v.as_str());
        }
        r
    }

    #[test]
    fn answer_challenge_uses_the_header_pair_of_401_and_407() {
        let t0 = Instant::now();
        let mut s = server(t0);
        s.set_algorithms(&[Algorithm::Sha256, Algorithm::Md5]);
        let challenges = s.challenge(t0, false);
        assert_eq!(challenges.len(), 2);
        let secret = |u: &str| (u == "trunk").then(|| Secret::Plain("s3cret".into()));
        let invite = Method::Invite;

        let r401 = challenge_response(401, HeaderName::WwwAuthenticate, &challenges);
        let (name, value) = answer_challenge(
            &r401,
            &invite,
            "sip:88005553535@10.0.0.9",
            "trunk",
            "s3cret",
            "cn",
            1,
        )
        .unwrap();
        assert_eq!(name, HeaderName::Authorization);
        assert_eq!(
            DigestCredentials::parse(&value).unwrap().algorithm,
            Algorithm::Sha256
        );
        assert!(matches!(
            s.verify(t0, &invite, &value, secret),
            AuthOutcome::Ok { .. }
        ));

        let r407 = challenge_response(407, HeaderName::ProxyAuthenticate, &challenges);
        let (name, value) = answer_challenge(
            &r407,
            &invite,
            "sip:1@10.0.0.9",
            "trunk",
            "s3cret",
            "cn2",
            2,
        )
        .unwrap();
        assert_eq!(name, HeaderName::ProxyAuthorization);
        assert!(matches!(
            s.verify(t0, &invite, &value, secret),
            AuthOutcome::Ok { .. }
        ));

        // the same nonce again needs a higher nc; a wrong password is answered, and refused
        let (_, wrong) =
            answer_challenge(&r401, &invite, "sip:1@10.0.0.9", "trunk", "nope", "cn3", 3).unwrap();
        assert!(matches!(
            s.verify(t0, &invite, &wrong, secret),
            AuthOutcome::Failed(_)
        ));
    }

    #[test]
    fn answer_challenge_skips_challenges_it_cannot_answer() {
        let md5 = "Digest realm=\"r\", nonce=\"n\", qop=\"auth\"".to_string();
        let odd = "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256".to_string();
        let only_int = "Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"".to_string();
        let r = challenge_response(401, HeaderName::WwwAuthenticate, &[odd.clone(), md5]);
        let (_, v) = answer_challenge(&r, &Method::Invite, "sip:a@b", "u", "p", "c", 1).unwrap();
        assert_eq!(
            DigestCredentials::parse(&v).unwrap().algorithm,
            Algorithm::Md5
        );
        let none = challenge_response(401, HeaderName::WwwAuthenticate, &[odd, only_int]);
        assert_eq!(
            answer_challenge(&none, &Method::Invite, "sip:a@b", "u", "p", "c", 1),
            Err(AuthError::UnsupportedQop("auth-int".into()))
        );
        // a 407 carrying only WWW-Authenticate has nothing to answer
        let r = challenge_response(407, HeaderName::WwwAuthenticate, &[]);
        assert_eq!(
            answer_challenge(&r, &Method::Invite, "sip:a@b", "u", "p", "c", 1),
            Err(AuthError::NotDigest)
        );
    }

    #[test]
    fn rfc7616_3_9_1_md5_vector() {
        let h = authorization_for(
            &rfc7616_challenge("MD5"),
            &get(),
            "/dir/index.html",
            "Mufasa",
            "Circle of Life",
            CNONCE,
            1,
        )
        .unwrap();
        assert_eq!(response_of(&h), "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn rfc2617_vector_with_ha1() {
        // RFC 2617 §3.5: HA1 939e7578…, response 6629fae4….
        assert_eq!(
            ha1(
                Algorithm::Md5,
                "Mufasa",
                "testrealm@host.com",
                "Circle Of Life"
            ),
            "939e7578ed9e3c518a452acee763bce9"
        );
        let r = request_digest(
            Algorithm::Md5,
            "939e7578ed9e3c518a452acee763bce9",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(("0a4f113b", 1, "auth")),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn parses_quotes_escapes_whitespace_and_case() {
        let c = DigestCredentials::parse(
            "digest  USERNAME = \"a\\\"b\\\\c\" ,Realm=\"r, with comma\",, nonce=n1,\
             uri=\"sip:x@y\",response=ABCDEF , QOP=auth,nc=0000000a,cnonce=\"c\" ,ALGORITHM=sha-256",
        )
        .unwrap();
        assert_eq!(c.username, "a\"b\\c");
        assert_eq!(c.realm, "r, with comma");
        assert_eq!(c.nonce, "n1");
        assert_eq!(c.uri, "sip:x@y");
        assert_eq!(c.response, "ABCDEF");
        assert_eq!(c.nc, Some(10));
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!(c.opaque, None);
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            DigestCredentials::parse("Basic dXNlcjpwYXNz"),
            Err(AuthError::NotDigest)
        );
        assert_eq!(
            parse_digest_params("Digest realm=\"abc"),
            Err(AuthError::UnterminatedQuote)
        );
        assert_eq!(
            parse_digest_params("Digest realm"),
            Err(AuthError::ExpectedEquals)
        );
        assert_eq!(
            parse_digest_params("Digest a=1 b=2"),
            Err(AuthError::ExpectedComma)
        );
        assert_eq!(
            parse_digest_params("Digest a=1, A=2"),
            Err(AuthError::DuplicateParam("a".into()))
        );
        assert_eq!(
            DigestCredentials::parse("Digest username=u, realm=r, nonce=n, uri=u"),
            Err(AuthError::MissingParam("response"))
        );
        assert_eq!(
            DigestCredentials::parse(
                "Digest username=u, realm=r, nonce=n, uri=u, response=x, nc=zz"
            ),
            Err(AuthError::BadNonceCount)
        );
        assert_eq!(
            DigestCredentials::parse(
                "Digest username=u, realm=r, nonce=n, uri=u, response=x, algorithm=MD5-sess"
            ),
            Err(AuthError::UnsupportedAlgorithm("MD5-sess".into()))
        );
        assert!(parse_digest_params("Digest").unwrap().is_empty());
    }

    fn server(t0: Instant) -> DigestServer {
        DigestServer::new("hotline".into(), [7u8; 32], Duration::from_secs(300), t0)
    }

    fn op1(u: &str) -> Option<Secret> {
        (u == "op1").then(|| Secret::Plain("s3cret".into()))
    }

    fn register() -> Method {
        Method::Register
    }

    fn answer(ch: &str, user: &str, pw: &str, nc: u32) -> String {
        authorization_for(ch, &register(), "sip:hotline", user, pw, "cn", nc).unwrap()
    }

    #[test]
    fn challenge_offers_sha256_then_md5() {
        let t0 = Instant::now();
        let s = server(t0);
        let ch = s.challenge(t0, false);
        assert_eq!(ch.len(), 2);
        let a = DigestChallenge::parse(&ch[0]).unwrap();
        let b = DigestChallenge::parse(&ch[1]).unwrap();
        assert_eq!(a.algorithm, Algorithm::Sha256);
        assert_eq!(b.algorithm, Algorithm::Md5);
        assert_eq!(a.nonce, b.nonce);
        assert_eq!(a.qop, vec!["auth".to_string()]);
        assert_eq!(a.realm, "hotline");
        assert!(a.opaque.is_some());
        assert!(!a.stale);
        assert!(
            DigestChallenge::parse(&s.challenge(t0, true)[0])
                .unwrap()
                .stale
        );
        // two challenges in the same millisecond still differ
        assert_ne!(
            DigestChallenge::parse(&s.challenge(t0, false)[0])
                .unwrap()
                .nonce,
            a.nonce
        );
    }

    #[test]
    fn round_trip_both_algorithms_and_nc_sequence() {
        let t0 = Instant::now();
        let mut s = server(t0);
        // the two values share a nonce, so answer each from its own challenge
        for i in 0..2 {
            let ch = s.challenge(t0, false).remove(i);
            let t = t0 + Duration::from_secs(1);
            for nc in 1..=3 {
                let h = answer(&ch, "op1", "s3cret", nc);
                assert_eq!(
                    s.verify(t, &register(), &h, op1),
                    AuthOutcome::Ok { user: "op1".into() },
                    "nc {nc} with {ch}"
                );
            }
        }
    }

    #[test]
    fn replay_and_decreasing_nc_are_refused() {
        let t0 = Instant::now();
        let mut s = server(t0);
        let ch = &s.challenge(t0, false)[0];
        let h1 = answer(ch, "op1", "s3cret", 1);
        let h5 = answer(ch, "op1", "s3cret", 5);
        let h3 = answer(ch, "op1", "s3cret", 3);
        assert!(matches!(
            s.verify(t0, &register(), &h1, op1),
            AuthOutcome::Ok { .. }
        ));
        assert_eq!(
            s.verify(t0, &register(), &h1, op1),
            AuthOutcome::Failed(AuthFailure::Replay)
        );
        assert!(matches!(
            s.verify(t0, &register(), &h5, op1),
            AuthOutcome::Ok { .. }
        ));
        assert_eq!(
            s.verify(t0, &register(), &h3, op1),
            AuthOutcome::Failed(AuthFailure::Replay)
        );
    }

    #[test]
    fn rfc2069_form_accepted_once() {
        let t0 = Instant::now();
        let mut s = server(t0);
        let ch = DigestChallenge::parse(&s.challenge(t0, false)[1]).unwrap();
        // an old phone ignores qop and answers H(HA1:nonce:HA2)
        let ha1 = ha1(Algorithm::Md5, "op1", "hotline", "s3cret");
        let resp = request_digest(
            Algorithm::Md5,
            &ha1,
            &ch.nonce,
            None,
            "REGISTER",
            "sip:hotline",
        );
        let h = format!(
            "Digest username=\"op1\", realm=\"hotline\", nonce=\"{}\", uri=\"sip:hotline\", \
             response=\"{resp}\"",
            ch.nonce
        );
        assert_eq!(
            s.verify(t0, &register(), &h, op1),
            AuthOutcome::Ok { user: "op1".into() }
        );
        assert_eq!(
            s.verify(t0, &register(), &h, op1),
            AuthOutcome::Failed(AuthFailure::Replay)
        );
    }

    #[test]
    fn expired_nonce_is_stale_only_with_the_right_password() {
        let t0 = Instant::now();
        let mut s = server(t0);
        let ch = &s.challenge(t0, false)[0];
        let late = t0 + Duration::from_secs(301);
        assert_eq!(
            s.verify(late, &register(), &answer(ch, "op1", "s3cret", 1), op1),
            AuthOutcome::Stale
        );
        assert_eq!(
            s.verify(late, &register(), &answer(ch, "op1", "wrong", 2), op1),
            AuthOutcome::Failed(AuthFailure::BadResponse)
        );
        // just inside the lifetime is fine
        let ch = &s.challenge(late, false)[0];
        assert!(matches!(
            s.verify(
                late + Duration::from_secs(300),
                &register(),
                &answer(ch, "op1", "s3cret", 1),
                op1
            ),
            AuthOutcome::Ok { .. }
        ));
    }

    #[test]
    fn unknown_user_looks_like_wrong_password() {
        let t0 = Instant::now();
        let mut s = server(t0);
        let ch = &s.challenge(t0, false)[0];
        let wrong = s.verify(t0, &register(), &answer(ch, "op1", "nope", 1), op1);
        let unknown = s.verify(t0, &register(), &answer(ch, "op9", "nope", 1), op1);
        assert_eq!(wrong, AuthOutcome::Failed(AuthFailure::BadResponse));
        assert_eq!(unknown, wrong);
        // even the decoy password does not let an unknown user in
        let decoy = answer(ch, "op9", "\u{0}decoy", 2);
        assert_eq!(
            s.verify(t0, &register(), &decoy, op1),
            AuthOutcome::Failed(AuthFailure::BadResponse)
        );
    }

    #[test]
    fn wrong_realm_and_tampered_nonce() {
        let t0 = Instant::now();
        let mut s = server(t0);
        let ch = s.challenge(t0, false).remove(0);
        let other = ch.replace("realm=\"hotline\"", "realm=\"elsewhere\"");
        assert_eq!(
            s.verify(t0, &register(), &answer(&other, "op1", "s3cret", 1), op1),
            AuthOutcome::Failed(AuthFailure::WrongRealm)
        );
        // change one hex digit of the timestamp, keep the tag
        let parsed = DigestChallenge::parse(&ch).unwrap();
        let mut n: Vec<char> = parsed.nonce.chars().collect();
        n[15] = if n[15] == '0' { '1' } else { '0' };
        let tampered: String = n.into_iter().collect();
        let ch2 = ch.replace(&parsed.nonce, &tampered);
        assert_eq!(
            s.verify(t0, &register(), &answer(&ch2, "op1", "s3cret", 1), op1),
            AuthOutcome::Failed(AuthFailure::BadNonce)
        );
        // a nonce signed under another key
        let other_server =
            DigestServer::new("hotline".into(), [8u8; 32], Duration::from_secs(300), t0);
        let foreign = &other_server.challenge(t0, false)[0];
        let foreign = foreign.replace(
            DigestChallenge::parse(foreign)
                .unwrap()
                .opaque
                .as_deref()
                .unwrap(),
            parsed.opaque.as_deref().unwrap(),
        );
        assert_eq!(
            s.verify(t0, &register(), &answer(&foreign, "op1", "s3cret", 1), op1),
            AuthOutcome::Failed(AuthFailure::BadNonce)
        );
        // garbage nonce
        let ch3 = ch.replace(&parsed.nonce, "not-hex");
        assert_eq!(
            s.verify(t0, &register(), &answer(&ch3, "op1", "s3cret", 1), op1),
            AuthOutcome::Failed(AuthFailure::BadNonce)
        );
    }

    #[test]
    fn ha1_secrets() {
        let t0 = Instant::now();
        let mut s = server(t0);
        let lookup = |u: &str| {
            (u == "op2").then(|| Secret::Ha1 {
                md5: Some(ha1(Algorithm::Md5, "op2", "hotline", "pw2").to_uppercase()),
                sha256: None,
            })
        };
        let ch = s.challenge(t0, false);
        // MD5 works from the stored HA1 (stored upper-case, still fine)
        assert!(matches!(
            s.verify(t0, &register(), &answer(&ch[1], "op2", "pw2", 1), lookup),
            AuthOutcome::Ok { .. }
        ));
        // no SHA-256 HA1 stored: refused like a wrong password
        assert_eq!(
            s.verify(t0, &register(), &answer(&ch[0], "op2", "pw2", 1), lookup),
            AuthOutcome::Failed(AuthFailure::BadResponse)
        );
    }

    #[test]
    fn qop_without_cnonce_or_with_auth_int_is_refused() {
        let t0 = Instant::now();
        let mut s = server(t0);
        let ch = &s.challenge(t0, false)[0];
        let h = answer(ch, "op1", "s3cret", 1);
        let no_cnonce = h.replace(", cnonce=\"cn\"", "");
        assert_eq!(
            s.verify(t0, &register(), &no_cnonce, op1),
            AuthOutcome::Failed(AuthFailure::BadQop)
        );
        let auth_int = h.replace("qop=auth", "qop=auth-int");
        assert_eq!(
            s.verify(t0, &register(), &auth_int, op1),
            AuthOutcome::Failed(AuthFailure::BadQop)
        );
        assert!(matches!(
            s.verify(t0, &register(), "Digest realm=", op1),
            AuthOutcome::Failed(AuthFailure::Malformed(_))
        ));
    }

    #[test]
    fn method_is_bound_into_the_response() {
        let t0 = Instant::now();
        let mut s = server(t0);
        let ch = &s.challenge(t0, false)[0];
        let h = answer(ch, "op1", "s3cret", 1);
        assert_eq!(
            s.verify(t0, &Method::Invite, &h, op1),
            AuthOutcome::Failed(AuthFailure::BadResponse)
        );
    }

    #[test]
    fn replay_table_forgets_expired_nonces() {
        let t0 = Instant::now();
        let mut s = server(t0);
        for i in 0..200u64 {
            let t = t0 + Duration::from_secs(i * 10);
            let ch = &s.challenge(t, false)[0];
            assert!(matches!(
                s.verify(t, &register(), &answer(ch, "op1", "s3cret", 1), op1),
                AuthOutcome::Ok { .. }
            ));
            // 300 s lifetime, one nonce every 10 s, pruned every 150 s: at most 31 + 15 stay
            assert!(s.tracked_nonces() <= 46, "{}", s.tracked_nonces());
        }
    }

    #[test]
    fn full_replay_table_evicts_old_half_and_refuses_them() {
        let t0 = Instant::now();
        let mut s = server(t0);
        let ch_old = s.challenge(t0, false).remove(0);
        assert!(matches!(
            s.verify(t0, &register(), &answer(&ch_old, "op1", "s3cret", 1), op1),
            AuthOutcome::Ok { .. }
        ));
        // fill the table directly with recent uses
        for i in 0..MAX_TRACKED_NONCES as u64 {
            s.used.insert(
                (1_000 + i % 1000, i + 10),
                NonceUse {
                    issued_ms: 1_000 + i % 1000,
                    highest_nc: Some(1),
                },
            );
        }
        let t = t0 + Duration::from_secs(2);
        let ch_new = s.challenge(t, false).remove(0);
        assert!(matches!(
            s.verify(t, &register(), &answer(&ch_new, "op1", "s3cret", 1), op1),
            AuthOutcome::Ok { .. }
        ));
        assert!(s.tracked_nonces() <= MAX_TRACKED_NONCES / 2 + 1);
        // the old nonce was forgotten but must not become usable again
        assert_eq!(
            s.verify(t, &register(), &answer(&ch_old, "op1", "s3cret", 2), op1),
            AuthOutcome::Failed(AuthFailure::Replay)
        );
    }
}
