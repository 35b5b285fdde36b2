//! Typed views of the headers the stack acts on, parsed on demand from raw header values,
//! plus the URI parser.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::message::{split_top_level, HeaderName, Headers, Host, Method, Params, SipUri, Uri};

/// Why a header or URI could not be understood. The text is used as the 400 reason phrase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SyntaxError(pub String);

fn err<T>(what: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError(what.into()))
}

/// Undo `%XX` escapes. Invalid escapes are an error; `%00` is allowed (RFC 4475 `escnull`).
pub fn unescape(s: &str) -> Result<String, SyntaxError> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => out.push(b),
                None => return err("bad %-escape in URI"),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).or_else(|_| err("URI escape is not UTF-8"))
}

/// Parse a host (`example.com`, `192.0.2.1`, `[2001:db8::1]`).
pub fn parse_host(s: &str) -> Result<Host, SyntaxError> {
    if let Some(inner) = s.strip_prefix('[') {
        let inner = match inner.strip_suffix(']') {
            Some(i) => i,
            None => return err("unterminated IPv6 reference"),
        };
        return inner
            .parse::<Ipv6Addr>()
            .map(Host::V6)
            .or_else(|_| err("bad IPv6 address"));
    }
    if s.is_empty() {
        return err("empty host");
    }
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Ok(Host::V4(a));
    }
    let ok = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !ok {
        return err(format!("bad host {s:?}"));
    }
    Ok(Host::Domain(s.to_string()))
}

/// Split `host[:port]` where host may be an IPv6 reference.
pub fn parse_hostport(s: &str) -> Result<(Host, Option<u16>), SyntaxError> {
    let s = s.trim();
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(end) => {
                let rest = &s[end + 1..];
                let port = match rest.strip_prefix(':') {
                    Some(p) => Some(p.trim()),
                    None if rest.trim().is_empty() => None,
                    None => return err("junk after IPv6 reference"),
                };
                (&s[..=end], port)
            }
            None => return err("unterminated IPv6 reference"),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.trim(), Some(p.trim())),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(p) => Some(p),
            Err(_) => return err(format!("bad port {p:?}")),
        },
        None => None,
    };
    Ok((parse_host(host.trim())?, port))
}

/// Parse `;a=b;c` parameters (the leading `;` optional). Whitespace around `;` and `=` is
/// tolerated (RFC 4475 `wsinv`); an empty parameter (`;;`, a trailing `;`) or a name that is
/// not a token is not (RFC 4475 `badinv01`).
pub fn parse_params(s: &str) -> Result<Params, SyntaxError> {
    let mut params = Params::default();
    let s = s.trim();
    if s.is_empty() {
        return Ok(params);
    }
    let s = s.strip_prefix(';').unwrap_or(s);
    for part in split_top_level(s, ';', false) {
        let part = part.trim();
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().to_string())),
            None => (part, None),
        };
        if name.is_empty() {
            return err("empty parameter");
        }
        if !name.chars().all(is_token_char) {
            return err("bad parameter name");
        }
        params.0.push((name.to_string(), value));
    }
    Ok(params)
}

/// Parse any URI. `sip:`/`sips:` are parsed fully; `tel:` and unknown schemes are kept opaque.
pub fn parse_uri(s: &str) -> Result<Uri, SyntaxError> {
    let s = s.trim();
    let Some((scheme, rest)) = s.split_once(':') else {
        return err("URI without a scheme");
    };
    let valid_scheme = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !valid_scheme {
        return err(format!("bad URI scheme {scheme:?}"));
    }
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return err("whitespace inside URI");
    }
    let lower = scheme.to_ascii_lowercase();
    match lower.as_str() {
        "sip" | "sips" => parse_sip_uri(lower == "sips", rest).map(Uri::Sip),
        "tel" => Ok(Uri::Tel(rest.to_string())),
        _ => Ok(Uri::Other {
            scheme: lower,
            rest: rest.to_string(),
        }),
    }
}

fn parse_sip_uri(secure: bool, rest: &str) -> Result<SipUri, SyntaxError> {
    // userinfo ends at the last '@' before any URI parameter or header that follows the host.
    // The user part may itself contain ';' and '?' (RFC 4475 `semiuri`), so find '@' first.
    let (userinfo, hostpart) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        Some(ui) => {
            let (u, p) = match ui.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (ui, None),
            };
            if u.is_empty() {
                return err("empty user part in URI");
            }
            (Some(unescape(u)?), p.map(unescape).transpose()?)
        }
        None => (None, None),
    };
    let (before_headers, headers) = match hostpart.split_once('?') {
        Some((b, h)) => (b, Some(h)),
        None => (hostpart, None),
    };
    let (hostport, params) = match before_headers.split_once(';') {
        Some((hp, p)) => (hp, parse_params(p)?),
        None => (before_headers, Params::default()),
    };
    let (host, port) = parse_hostport(hostport)?;
    let headers = match headers {
        Some(h) => h
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.to_string(), String::new()),
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(SipUri {
        secure,
        user,
        password,
        host,
        port,
        params,
        headers,
    })
}

/// One Via value: `SIP/2.0/UDP host:port;branch=…;received=…;rport`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Upper-cased transport: `UDP`, `TCP`, `TLS`, `SCTP`, `WS`, … (kept as received otherwise).
    pub transport: String,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    pub fn parse(value: &str) -> Result<Via, SyntaxError> {
        // protocol-name SLASH protocol-version SLASH transport, with LWS allowed around slashes.
        let mut rest = value.trim();
        let mut parts = Vec::with_capacity(3);
        for _ in 0..2 {
            let Some(slash) = rest.find('/') else {
                return err("Via without SIP/2.0/transport");
            };
            parts.push(rest[..slash].trim());
            rest = rest[slash + 1..].trim_start();
        }
        if !parts[0].eq_ignore_ascii_case("SIP") || parts[1] != "2.0" {
            return err("Via protocol is not SIP/2.0");
        }
        let tend = rest
            .find(|c: char| c.is_whitespace())
            .ok_or_else(|| SyntaxError("Via without sent-by".into()))?;
        let transport = rest[..tend].to_ascii_uppercase();
        if transport.is_empty()
            || !transport
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return err("bad Via transport");
        }
        let rest = rest[tend..].trim_start();
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (&rest[..i], parse_params(&rest[i..])?),
            None => (rest, Params::default()),
        };
        // a Via may carry a trailing comment in parentheses; ignore it
        let sent_by = sent_by.split('(').next().unwrap_or(sent_by).trim();
        let (host, port) = parse_hostport(sent_by)?;
        Ok(Via {
            transport,
            host,
            port,
            params,
        })
    }
    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }
    /// True when the branch carries the RFC 3261 magic cookie and something after it
    /// (a bare `z9hG4bK` is not unique: RFC 4475 `badbranch`).
    pub fn is_rfc3261(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.starts_with("z9hG4bK") && b.len() > "z9hG4bK".len())
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// `"Display" <uri>;params` or `uri;params` (From, To, Contact, Route, Refer-To…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted and unescaped.
    pub display: Option<String>,
    pub uri: Uri,
    pub params: Params,
}

impl NameAddr {
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display: None,
            uri,
            params: Params::default(),
        }
    }

    pub fn parse(value: &str) -> Result<NameAddr, SyntaxError> {
        let v = value.trim();
        let (display, after) = if let Some(q) = v.strip_prefix('"') {
            // quoted-string display name with backslash escapes
            let mut out = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e)) => out.push(e),
                        None => return err("unterminated quoted display name"),
                    },
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => out.push(c),
                }
            }
            let Some(end) = end else {
                return err("unterminated quoted display name");
            };
            let rest = q[end..].trim_start();
            if !rest.starts_with('<') {
                return err("quoted display name without <URI>");
            }
            (Some(out), rest)
        } else if let Some(lt) = v.find('<') {
            // display-name = *(token LWS): unquoted, only token characters (RFC 4475 `baddn`)
            let d = v[..lt].trim();
            if !d.chars().all(|c| is_token_char(c) || c == ' ' || c == '\t') {
                return err("unquoted display name with non-token characters");
            }
            (
                if d.is_empty() {
                    None
                } else {
                    Some(d.to_string())
                },
                &v[lt..],
            )
        } else {
            (None, v)
        };
        if let Some(inner) = after.strip_prefix('<') {
            let Some(gt) = inner.find('>') else {
                return err("missing '>' after URI");
            };
            let uri = &inner[..gt];
            // no LWS inside the brackets (RFC 4475 `badaspec`)
            if uri.trim() != uri {
                return err("whitespace inside <URI>");
            }
            let uri = parse_uri(uri)?;
            let params = parse_params(&inner[gt + 1..])?;
            return Ok(NameAddr {
                display,
                uri,
                params,
            });
        }
        // addr-spec without brackets: parameters after ';' belong to the header, not the URI
        // (RFC 3261 §20.10), and the URI cannot contain ',', ';' or '?'.
        let (uri, params) = match after.find(';') {
            Some(i) => (&after[..i], parse_params(&after[i..])?),
            None => (after, Params::default()),
        };
        if uri.contains(['?', ',']) {
            return err("URI with ? or , must be in angle brackets");
        }
        Ok(NameAddr {
            display,
            uri: parse_uri(uri)?,
            params,
        })
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "\"{}\" ", d.replace('\\', "\\\\").replace('"', "\\\""))?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// `CSeq: 4711 INVITE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(value: &str) -> Result<CSeq, SyntaxError> {
        let mut it = value.split_whitespace();
        let (Some(n), Some(m), None) = (it.next(), it.next(), it.next()) else {
            return err("CSeq is not 'number METHOD'");
        };
        // RFC 3261 §8.1.1.5: a 32-bit unsigned number (less than 2**31 when generated)
        let seq = match n.parse::<u32>() {
            Ok(s) => s,
            Err(_) => return err("CSeq number out of range"),
        };
        if !m.chars().all(is_token_char) {
            return err("bad CSeq method");
        }
        Ok(CSeq {
            seq,
            method: Method::from_token(m),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// RFC 3261 §25.1 `token` characters.
pub fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// A non-empty run of ASCII digits (leading zeros allowed, RFC 4475 `wsinv`; no sign) that fits
/// a u64.
fn decimal(v: &str) -> Option<u64> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Typed accessors for the headers every transaction and dialog needs.
impl Headers {
    /// All Via values, top first.
    pub fn vias(&self) -> Result<Vec<Via>, SyntaxError> {
        self.values(&HeaderName::Via).map(Via::parse).collect()
    }
    /// The top Via.
    pub fn top_via(&self) -> Result<Via, SyntaxError> {
        match self.values(&HeaderName::Via).next() {
            Some(v) => Via::parse(v),
            None => err("missing Via"),
        }
    }
    pub fn from_addr(&self) -> Result<NameAddr, SyntaxError> {
        self.name_addr(&HeaderName::From, "From")
    }
    pub fn to_addr(&self) -> Result<NameAddr, SyntaxError> {
        self.name_addr(&HeaderName::To, "To")
    }
    fn name_addr(&self, name: &HeaderName, label: &str) -> Result<NameAddr, SyntaxError> {
        let mut all = self.get_all(name);
        match (all.next(), all.next()) {
            (Some(v), None) => NameAddr::parse(v),
            (None, _) => err(format!("missing {label}")),
            (Some(_), Some(_)) => err(format!("more than one {label}")),
        }
    }
    pub fn call_id(&self) -> Result<&str, SyntaxError> {
        let mut all = self.get_all(&HeaderName::CallId);
        match (all.next(), all.next()) {
            (Some(v), None) if !v.is_empty() && !v.contains(char::is_whitespace) => Ok(v),
            (Some(_), None) => err("bad Call-ID"),
            (None, _) => err("missing Call-ID"),
            (Some(_), Some(_)) => err("more than one Call-ID"),
        }
    }
    pub fn cseq(&self) -> Result<CSeq, SyntaxError> {
        let mut all = self.get_all(&HeaderName::CSeq);
        match (all.next(), all.next()) {
            (Some(v), None) => CSeq::parse(v),
            (None, _) => err("missing CSeq"),
            (Some(_), Some(_)) => err("more than one CSeq"),
        }
    }
    /// `None` when absent.
    pub fn max_forwards(&self) -> Result<Option<u8>, SyntaxError> {
        match self.get(&HeaderName::MaxForwards) {
            None => Ok(None),
            Some(v) => match decimal(v) {
                Some(n) if n <= 255 => Ok(Some(n as u8)),
                _ => err("bad Max-Forwards"),
            },
        }
    }
    /// `None` when absent.
    pub fn expires(&self) -> Result<Option<u32>, SyntaxError> {
        match self.get(&HeaderName::Expires) {
            None => Ok(None),
            Some(v) => match decimal(v) {
                Some(n) => Ok(Some(n.min(u32::MAX as u64) as u32)),
                None => err("bad Expires"),
            },
        }
    }
    /// Contact values; `Ok(None)` for `Contact: *`.
    pub fn contacts(&self) -> Result<Option<Vec<NameAddr>>, SyntaxError> {
        let values: Vec<&str> = self.values(&HeaderName::Contact).collect();
        if values.len() == 1 && values[0] == "*" {
            return Ok(None);
        }
        if values.contains(&"*") {
            return err("Contact * with other contacts");
        }
        values
            .into_iter()
            .map(NameAddr::parse)
            .collect::<Result<_, _>>()
            .map(Some)
    }
    /// Option tags of a Require / Supported / Proxy-Require style header.
    pub fn tokens<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.values(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_spaces_around_slashes() {
        let v = Via::parse(
            "SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw"
                .replace("\r\n", "")
                .as_str(),
        )
        .unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, Host::V4("192.0.2.2".parse().unwrap()));
        assert_eq!(v.branch(), Some("390skdjuw"));
    }

    #[test]
    fn name_addr_with_escaped_quote() {
        let n = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(n.display.as_deref(), Some("J Rosenberg \\\""));
        assert_eq!(n.tag(), Some("98asjd8"));
        assert_eq!(n.uri.user(), Some("jdrosen"));
    }

    #[test]
    fn escaped_user_part() {
        let u = parse_uri("sip:sips%3Auser%40example.com@example.net").unwrap();
        assert_eq!(u.user(), Some("sips:user@example.com"));
        assert_eq!(u.to_string(), "sip:sips%3Auser%40example.com@example.net");
    }

    #[test]
    fn unknown_scheme_is_opaque() {
        let u = parse_uri("kingsley:chiefs@example.com").unwrap();
        assert_eq!(u.scheme(), "kingsley");
    }

    #[test]
    fn ipv6_hostport() {
        let (h, p) = parse_hostport("[2001:db8::10]:5070").unwrap();
        assert_eq!(h, Host::V6("2001:db8::10".parse().unwrap()));
        assert_eq!(p, Some(5070));
    }
}
