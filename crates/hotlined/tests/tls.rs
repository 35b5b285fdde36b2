//! Transport security with real `hotlined run` daemons and certificates made here with
//! `rcgen`: the admin API over HTTPS with the configured certificate, the certificate
//! replaced by `hotlined reload`, `POST /api/v1/reload` and SIGHUP (a new connection gets the
//! new one; a bad one is refused and the old one kept), a daemon that will not start on a
//! bad key, and the partner link over HTTPS: refused (and retried, nothing lost) while the
//! partner's certificate comes from a CA we do not trust, delivered once it shows the
//! self-signed certificate we were given as `partner.ca`.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, hotlined, http, ring, Daemon, Site, CALLER};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};

const ADMIN: &str = "Bearer change-me";
const WAIT: Duration = Duration::from_secs(20);

/// A certificate authority made for the test.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca {
            cert: params.self_signed(&key).unwrap(),
            key,
        }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A server certificate for 127.0.0.1 and localhost: (chain PEM with the CA after the
    /// server's certificate, key PEM, the server certificate).
    fn issue(&self) -> (String, String, CertificateDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (
            format!("{}{}", cert.pem(), self.cert.pem()),
            key.serialize_pem(),
            cert.der().clone(),
        )
    }

    /// Writes `<stem>.pem` / `<stem>.key` of a new certificate into `dir`.
    fn install(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf, CertificateDer<'static>) {
        let (chain, key, leaf) = self.issue();
        let (c, k) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&c, chain).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k, leaf)
    }

    fn write_pem(&self, path: &Path) {
        std::fs::write(path, self.cert.pem()).unwrap();
    }
}

/// A self-signed server certificate for 127.0.0.1 and localhost marked as no CA (as the
/// README's `openssl req -x509 … -addext basicConstraints=critical,CA:FALSE` makes), written
/// to `<stem>.pem` / `<stem>.key` in `dir`.
fn self_signed(dir: &Path, stem: &str) -> (PathBuf, PathBuf, CertificateDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, stem);
    params.is_ca = IsCa::ExplicitNoCa;
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k, cert.der().clone())
}

/// One HTTPS/1.1 request trusting `roots` for 127.0.0.1: status, body and the server's
/// certificate; `None` when the connection or the handshake fails.
fn https(
    addr: SocketAddr,
    roots: &[CertificateDer<'static>],
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String, CertificateDer<'static>)> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(common::request(addr, method, path, headers, body).as_bytes())
        .ok()?;
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(_) => return None,
    }
    let leaf = s.conn.peer_certificates()?.first()?.clone().into_owned();
    let (status, body) = common::answer(raw)?;
    Some((status, body, leaf))
}

/// The certificate the daemon's admin HTTPS shows a new connection.
fn served_cert(addr: SocketAddr, roots: &[CertificateDer<'static>]) -> CertificateDer<'static> {
    let (status, body, leaf) = https(addr, roots, "GET", "/health", &[], "").unwrap();
    assert!(status == 200 || status == 503, "{status} {body}");
    leaf
}

fn tls_env(cert: &Path, key: &Path) -> Vec<(String, String)> {
    vec![
        (
            "HOTLINE__ADMIN__TLS_CERT".into(),
            cert.display().to_string(),
        ),
        ("HOTLINE__ADMIN__TLS_KEY".into(), key.display().to_string()),
    ]
}

fn start(site: &Site, env: &[(String, String)]) -> Daemon {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    site.start(&env)
}

/// `hotlined reload` on `site` with `env`: exit code and what it printed.
fn reload_cli(site: &Site, env: &[(String, String)]) -> (Option<i32>, String) {
    let out = hotlined()
        .args(["reload", "--config"])
        .arg(&site.config)
        .env("HOTLINE__ADMIN__LISTEN", site.admin.to_string())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_admin_api_speaks_https_and_reloads_its_certificate() {
    let site = Site::new();
    let ca = Ca::new("Hotline test CA");
    let roots = [ca.der()];
    let dir = site.dir.path();
    let (cert, key, first) = ca.install(dir, "admin");
    let env = tls_env(&cert, &key);
    let d = start(&site, &env);
    assert!(
        d.log().contains(&format!("https://{}", site.admin)),
        "{}",
        d.log()
    );

    // The API answers over HTTPS with the configured certificate…
    let (status, body, leaf) = eventually(WAIT, "the appeal list", || {
        let r = https(
            d.admin,
            &roots,
            "GET",
            "/api/v1/appeals",
            &[("Authorization", ADMIN)],
            "",
        )
        .unwrap();
        (r.0 != 503).then_some(r)
    });
    assert_eq!(status, 200, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["appeals"].is_array());
    assert_eq!(leaf, first);
    // … and not over plain HTTP.
    assert!(
        common::http_get(d.admin, "/health").is_none_or(|(s, _)| s != 200),
        "plain HTTP answered on the HTTPS port"
    );

    // `hotlined reload` after the files were replaced: it reaches the daemon, which still
    // shows the old certificate (trusted through the CA kept in the chain file), and the
    // daemon takes the new one for new connections.
    let (_, _, second) = ca.install(dir, "admin");
    assert_ne!(second, first);
    let (code, out) = reload_cli(&site, &env);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(served_cert(d.admin, &roots), second);
    d.wait_for_log("admin HTTPS certificate replaced");

    // A key that is not the certificate's: the reload is refused with the problem, the
    // running certificate is kept.
    let (_, other_key, _) = ca.issue();
    let (_, _, third) = ca.install(dir, "admin");
    std::fs::write(&key, other_key).unwrap();
    let (status, body, _) = https(
        d.admin,
        &roots,
        "POST",
        "/api/v1/reload",
        &[("Authorization", ADMIN)],
        "",
    )
    .unwrap();
    assert_eq!(status, 422, "{body}");
    let problems = serde_json::from_str::<Value>(&body).unwrap()["problems"].to_string();
    assert!(
        problems.contains("is not the certificate's key"),
        "{problems}"
    );
    assert_eq!(served_cert(d.admin, &roots), second);

    // SIGHUP with a good pair again.
    let (_, _, fourth) = ca.install(dir, "admin");
    assert_ne!(fourth, third);
    d.signal("HUP");
    eventually(WAIT, "the certificate after SIGHUP", || {
        (served_cert(d.admin, &roots) == fourth).then_some(())
    });
}

#[test]
fn reload_cli_trusts_a_self_signed_admin_certificate_by_its_file() {
    let site = Site::new();
    let dir = site.dir.path();
    // self-signed, for a name that is not the address connected to: the file pins it
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["hotline.example.org".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (c, k) = (dir.join("self.pem"), dir.join("self.key"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    let env = tls_env(&c, &k);
    let d = start(&site, &env);
    let (code, out) = reload_cli(&site, &env);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("configuration reloaded"), "{out}");
    d.wait_for_log("reloading the configuration");

    // A certificate that is neither the file's nor issued by it is not trusted: the token is
    // not sent.
    let stranger = Ca::new("someone else");
    let (c2, _, _) = stranger.install(dir, "stranger");
    let mut env2 = env.clone();
    env2[0].1 = c2.display().to_string();
    let (code, out) = reload_cli(&site, &env2);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("certificate"), "{out}");
    let reloads = d.log().matches("reloading the configuration").count();
    assert_eq!(reloads, 1, "{}", d.log());
}

#[test]
fn check_and_run_refuse_bad_certificate_files() {
    let site = Site::new();
    let dir = site.dir.path();
    let ca = Ca::new("check CA");
    let (cert, key, _) = ca.install(dir, "ok");
    let (_, other_key, _) = ca.issue();
    std::fs::write(dir.join("other.key"), other_key).unwrap();
    std::fs::write(
        dir.join("garbage.pem"),
        "-----BEGIN CERTIFICATE-----\n!!!\n",
    )
    .unwrap();
    std::fs::write(dir.join("empty.pem"), "nothing here\n").unwrap();
    let main = std::fs::read_to_string(&site.config).unwrap();
    let with_admin = |extra: &str| main.replacen("[admin]\n", &format!("[admin]\n{extra}\n"), 1);
    assert!(main.contains("[admin]\n"));
    let check = |text: String| {
        std::fs::write(&site.config, text).unwrap();
        let out = hotlined()
            .args(["check", "--config"])
            .arg(&site.config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let p = site.config.display().to_string();
    let at = |text: &str, key: &str| {
        let line = text
            .lines()
            .position(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("{key} in\n{text}"))
            + 1;
        format!("{p}:{line}:1: ")
    };
    let cases = [
        (
            format!("tls_cert = \"{}\"", cert.display()),
            "tls_cert",
            "admin.tls_cert needs admin.tls_key",
        ),
        (
            format!("tls_key = \"{}\"", key.display()),
            "tls_key",
            "admin.tls_key needs admin.tls_cert",
        ),
        (
            format!(
                "tls_cert = \"missing.pem\"\ntls_key = \"{}\"",
                key.display()
            ),
            "tls_cert",
            "cannot read",
        ),
        (
            format!(
                "tls_cert = \"{}\"\ntls_key = \"missing.key\"",
                cert.display()
            ),
            "tls_key",
            "cannot read",
        ),
        (
            format!(
                "tls_cert = \"garbage.pem\"\ntls_key = \"{}\"",
                key.display()
            ),
            "tls_cert",
            "is not PEM",
        ),
        (
            format!("tls_cert = \"empty.pem\"\ntls_key = \"{}\"", key.display()),
            "tls_cert",
            "has no CERTIFICATE",
        ),
        (
            format!("tls_cert = \"{}\"\ntls_key = \"empty.pem\"", cert.display()),
            "tls_key",
            "has no PRIVATE KEY",
        ),
        (
            format!("tls_cert = \"{}\"\ntls_key = \"other.key\"", cert.display()),
            "tls_cert",
            "is not the certificate's key",
        ),
    ];
    for (extra, key_name, message) in &cases {
        let text = with_admin(extra);
        let (code, out) = check(text.clone());
        assert_eq!(code, Some(1), "{extra}: {out}");
        let want = at(&text, key_name);
        assert!(
            out.lines()
                .any(|l| l.starts_with(&want) && l.contains(message)),
            "{extra}: want {want}…{message} in\n{out}"
        );
    }
    // relative paths are taken from the configuration's folder; a good pair passes
    let (code, out) = check(with_admin("tls_cert = \"ok.pem\"\ntls_key = \"ok.key\""));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("https://"), "{out}");
    assert!(out.contains(", valid until "), "{out}");
    assert!(!out.contains("the certificate expires"), "{out}");
    // a certificate that ends in ten days passes, with a warning saying when
    let end = chrono::Utc::now().date_naive() + chrono::Days::new(10);
    let key_pair = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.not_after = rcgen::date_time_ymd(
        chrono::Datelike::year(&end),
        chrono::Datelike::month(&end) as u8,
        chrono::Datelike::day(&end) as u8,
    );
    let soon = params.self_signed(&key_pair).unwrap();
    std::fs::write(dir.join("soon.pem"), soon.pem()).unwrap();
    std::fs::write(dir.join("soon.key"), key_pair.serialize_pem()).unwrap();
    let (code, out) = check(with_admin(
        "tls_cert = \"soon.pem\"\ntls_key = \"soon.key\"",
    ));
    assert_eq!(code, Some(0), "{out}");
    let warning = format!(
        "  warning   admin.tls_cert: the certificate expires on {} 00:00 UTC, in ",
        end.format("%Y-%m-%d")
    );
    assert!(out.contains(&warning), "want {warning:?} in\n{out}");

    // the partner's CA file
    std::fs::write(&site.config, main.clone()).unwrap();
    let partner = |url: &str, ca: &str| {
        format!(
            "{main}\n[partner]\nname = \"city\"\nurl = \"{url}\"\ntoken = \"t\"\nca = \"{ca}\"\n"
        )
    };
    let text = partner("https://127.0.0.1:1", "garbage.pem");
    let (code, out) = check(text.clone());
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&at(&text, "ca =")) && out.contains("partner.ca:"),
        "{out}"
    );
    let (code, out) = check(partner("http://127.0.0.1:1", "ok.pem"));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("plain http://"), "{out}");
    ca.write_pem(&dir.join("ca.pem"));
    let (code, out) = check(partner("https://127.0.0.1:1", "ca.pem"));
    assert_eq!(code, Some(0), "{out}");

    // `run` refuses the mismatched key before binding anything
    std::fs::write(&site.config, &main).unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").unwrap();
    let out = site
        .command()
        .env(
            "HOTLINE__ADMIN__LISTEN",
            admin.local_addr().unwrap().to_string(),
        )
        .envs(tls_env(&cert, &dir.join("other.key")))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("is not the certificate's key"), "{stderr}");
    assert!(!stderr.contains("cannot bind"), "{stderr}");
}

// ---------------------------------------------------------------------------------------
// The partner link.

const SHARED: &str = "city-region-shared-token";

fn partner_env(name: &str, url: String) -> Vec<(String, String)> {
    vec![
        ("HOTLINE__PARTNER__NAME".into(), name.into()),
        ("HOTLINE__PARTNER__URL".into(), url),
        ("HOTLINE__PARTNER__TOKEN".into(), SHARED.into()),
        ("HOTLINE__PARTNER__RETRY_MIN_MS".into(), "100".into()),
        ("HOTLINE__PARTNER__RETRY_MAX_MS".into(), "300".into()),
    ]
}

/// An admin API call over plain HTTP: status and JSON.
fn api(d: &Daemon, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = http(d.admin, method, path, &[("Authorization", ADMIN)], body)
        .unwrap_or_else(|| panic!("{method} {path}: no answer"));
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The appeals on the HTTPS daemon `d` that point back at `id`.
fn received(d: &Daemon, roots: &[CertificateDer<'static>], id: &str) -> Vec<Value> {
    let (s, body, _) = https(
        d.admin,
        roots,
        "GET",
        "/api/v1/appeals?per_page=100",
        &[("Authorization", ADMIN)],
        "",
    )
    .unwrap();
    if s == 503 {
        return Vec::new();
    }
    assert_eq!(s, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["appeals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["partner_ref"] == format!("city:{id}"))
        .cloned()
        .collect()
}

#[test]
fn the_partner_link_verifies_the_partner_certificate_and_retries_until_it_does() {
    let (site_a, site_b) = (Site::new(), Site::new());
    let rogue = Ca::new("unknown CA");
    // B's certificate is self-signed; A trusts it through `partner.ca` (a copy of B's
    // certificate file). B starts with a certificate from a CA A does not know.
    let (b_cert, b_key, b_der) = self_signed(site_a.dir.path(), "region");
    let ca_file = b_cert.clone();
    let mut env_a = partner_env("city", format!("https://{}", site_b.admin));
    env_a.push(("HOTLINE__PARTNER__CA".into(), ca_file.display().to_string()));
    let (cert_b, key_b, _) = rogue.install(site_b.dir.path(), "admin");
    let mut env_b = partner_env("region", format!("http://{}", site_a.admin));
    env_b.extend(tls_env(&cert_b, &key_b));
    let a = start(&site_a, &env_a);
    let b = start(&site_b, &env_b);
    assert!(!a.log().contains("unencrypted"), "{}", a.log());

    let _call = ring(a.sip, "3758787", CALLER, "tls-partner-call");
    let id = eventually(WAIT, "the call's appeal", || {
        let (s, v) = api(&a, "GET", "/api/v1/appeals?per_page=100", "");
        (s == 200).then_some(())?;
        v["appeals"]
            .as_array()?
            .iter()
            .find(|x| x["call_id"] == "tls-partner-call")
            .map(|x| x["id"].as_str().unwrap().to_owned())
    });
    let (s, v) = api(
        &a,
        "POST",
        &format!("/api/v1/appeals/{id}/forward"),
        &json!({"note": "через HTTPS"}).to_string(),
    );
    assert_eq!(s, 202, "{v}");

    // Refused, and retried: several attempts, each naming the certificate.
    let until = std::time::Instant::now() + WAIT;
    loop {
        let log = a.log();
        let refusals = log
            .lines()
            .filter(|l| {
                l.contains("will retry")
                    && l.contains("certificate refused")
                    && l.contains("UnknownIssuer")
            })
            .count();
        if refusals >= 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "no retried certificate refusals in A's log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!a.log().contains("giving up"), "{}", a.log());
    assert!(received(&b, &[rogue.der()], &id).is_empty());

    // B takes the self-signed certificate A trusts: the queued forward arrives, once.
    std::fs::copy(&b_cert, &cert_b).unwrap();
    std::fs::copy(&b_key, &key_b).unwrap();
    let (s, body, _) = https(
        b.admin,
        &[rogue.der()],
        "POST",
        "/api/v1/reload",
        &[("Authorization", ADMIN)],
        "",
    )
    .unwrap();
    assert_eq!(s, 200, "{body}");
    let on_b = eventually(WAIT, "the appeal on B", || {
        received(&b, std::slice::from_ref(&b_der), &id).pop()
    });
    assert_eq!(on_b["notes"], "через HTTPS");
    assert_eq!(on_b["caller_number"], CALLER);
    eventually(WAIT, "A's delivery logged", || {
        a.log().contains("partner accepted").then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(received(&b, &[b_der], &id).len(), 1);
}

#[test]
fn a_plain_http_partner_elsewhere_is_warned_about() {
    let site = Site::new();
    // a documentation address (RFC 5737): nothing answers, deliveries would just be retried
    let env = partner_env("city", "http://192.0.2.10:8080".into());
    let d = start(&site, &env);
    d.wait_for_log("unencrypted");
}
