//! Hot reload (issue 4 item 5): SIGHUP, `hotlined reload` and `POST /api/v1/reload` all come
//! here. The configuration is read and checked again from the same file (with the same
//! `HOTLINE__…` environment); when it is valid the gateway switches to it — calls that arrive
//! afterwards get the new lines, menus and prompts, calls in progress finish on the `Arc`s
//! they started with. An invalid configuration is refused with its `path:line:col` problems
//! and the running one is kept. What only a restart can change (listen addresses, the
//! database, the admin token…) is named in the answer and the log when it differs.

use std::path::PathBuf;
use std::sync::Arc;

use tracing::{info, warn};

use crate::config::{Config, ConfigErrors};

/// Reloads the daemon's configuration; one reload runs at a time.
pub struct ConfigReloader {
    path: PathBuf,
    /// The configuration the daemon started with: what restart-only settings are compared to.
    started: Arc<Config>,
    gateway: gateway::Reloader,
    /// The admin API's operator table, to follow the operators file (with the writer its
    /// changes are saved through); `None` where there is none.
    operators: Option<(Arc<crate::admin::OperatorTable>, appeals::AppealWriter)>,
    /// The admin API's case directory, replaced whole by a valid reload.
    directory: Option<crate::directory::DirectorySlot>,
    /// The admin HTTPS certificate, replaced by the configured one at every reload; `None`
    /// when the admin HTTP is plain.
    admin_certs: Option<Arc<crate::tls::CertSwitch>>,
    /// The workspace's live picture: operators' names, queue titles, the menus' words.
    live: Option<Arc<crate::live::Live>>,
    busy: tokio::sync::Mutex<()>,
}

/// A reload that was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Lines new calls get.
    pub lines: usize,
    /// Lines with a voice menu.
    pub menus: usize,
    /// Prompts in the new cache (greetings and menu prompts).
    pub prompts: usize,
    /// Settings that differ from the running ones but need a restart (not applied).
    pub restart_needed: Vec<String>,
}

/// Why a reload was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration has problems; the running one is kept.
    #[error("invalid configuration, the running one is kept:\n{0}")]
    Invalid(ConfigErrors),
    /// The gateway has stopped (shutting down).
    #[error(transparent)]
    Stopped(#[from] gateway::GatewayStopped),
    /// The loading task failed.
    #[error("loading the configuration failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl ConfigReloader {
    pub fn new(path: PathBuf, started: Arc<Config>, gateway: gateway::Reloader) -> Self {
        ConfigReloader {
            path,
            started,
            gateway,
            operators: None,
            directory: None,
            admin_certs: None,
            live: None,
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// Keeps `table` in step with the operators file at every reload: operators added there
    /// appear (logged out) and can log in, removed ones leave it.
    pub fn with_operators(
        mut self,
        table: Arc<crate::admin::OperatorTable>,
        writer: appeals::AppealWriter,
    ) -> Self {
        self.operators = Some((table, writer));
        self
    }

    /// Gives `slot` the directory (districts, organisations, services, code lists) of every
    /// reload that passed its checks.
    pub fn with_directory(mut self, slot: crate::directory::DirectorySlot) -> Self {
        self.directory = Some(slot);
        self
    }

    /// Keeps the workspace's live picture (names, titles, the menus' words) in step with
    /// every reload.
    pub fn with_live(mut self, live: Arc<crate::live::Live>) -> Self {
        self.live = Some(live);
        self
    }

    /// Serves the configured admin certificate from `certs` after every reload: new
    /// connections get it, open ones keep theirs.
    pub fn with_admin_certs(mut self, certs: Arc<crate::tls::CertSwitch>) -> Self {
        self.admin_certs = Some(certs);
        self
    }

    /// Loads the configuration file again and, when it is valid, hands it to the gateway;
    /// `why` (`SIGHUP`, `admin API`) goes to the log.
    pub async fn reload(&self, why: &str) -> Result<Reloaded, ReloadError> {
        let _one_at_a_time = self.busy.lock().await;
        info!(config = %self.path.display(), by = why, "reloading the configuration");
        let path = self.path.clone();
        // reading and decoding every prompt is file I/O: off the runtime's threads
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path)).await?;
        let new = match loaded {
            Ok(c) => c,
            Err(errors) => {
                for p in &errors.0 {
                    warn!(problem = %p, "reload refused");
                }
                warn!(
                    problems = errors.0.len(),
                    "the configuration has problems; the running one is kept"
                );
                return Err(ReloadError::Invalid(errors));
            }
        };
        let mut restart_needed = restart_only_changes(&self.started, &new);
        let ignored = self.gateway.reload(crate::gateway_settings(&new)).await?;
        for name in ignored {
            if !restart_needed.iter().any(|n| n == name) {
                restart_needed.push(name.to_owned());
            }
        }
        if let Some((table, writer)) = &self.operators {
            let (added, removed) = table.sync(
                new.operators
                    .iter()
                    .map(|o| (o.login.clone(), o.name.clone())),
                writer,
            );
            if !added.is_empty() || !removed.is_empty() {
                info!(added = %added.join(", "), removed = %removed.join(", "), "operators changed");
            }
        }
        if let Some(slot) = &self.directory {
            slot.set(Arc::clone(&new.directory));
        }
        if let Some(live) = &self.live {
            live.reconfigure(crate::live::setup(&new));
        }
        if let (Some(certs), Some(new_key)) = (&self.admin_certs, &new.admin_tls) {
            let old = certs.current();
            if old.cert != new_key.cert {
                certs.replace(new_key.clone());
                if let Some(leaf) = new_key.cert.first() {
                    info!(sha256 = %crate::tls::fingerprint(leaf), "admin HTTPS certificate replaced: new connections get it");
                }
                crate::tls::warn_if_expiring("admin.tls_cert", new_key.cert.first());
            }
        }
        let done = Reloaded {
            lines: new.lines.len(),
            menus: new.menus.len(),
            prompts: new.prompts.names().count(),
            restart_needed,
        };
        if !done.restart_needed.is_empty() {
            warn!(
                settings = %done.restart_needed.join(", "),
                "these settings changed but only take effect after a restart; the running values are kept"
            );
        }
        info!(
            lines = done.lines,
            menus = done.menus,
            prompts = done.prompts,
            "configuration reloaded: new calls get it, calls in progress keep theirs"
        );
        Ok(done)
    }
}

/// Settings of the daemon itself (not the gateway's) that a reload cannot change.
fn restart_only_changes(running: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (&running.main, &new.main);
    let mut out = Vec::new();
    let mut differ = |name: &str, same: bool| {
        if !same {
            out.push(name.to_owned());
        }
    };
    differ("sip.listen", a.sip.listen == b.sip.listen);
    differ("sip.listen_v6", a.sip.listen_v6 == b.sip.listen_v6);
    differ("admin.listen", a.admin.listen == b.admin.listen);
    differ("admin.token", a.admin.token == b.admin.token);
    // a certificate can be replaced; turning HTTPS on or off needs a restart
    differ(
        "admin.tls_cert/tls_key",
        a.admin.tls_cert.is_some() == b.admin.tls_cert.is_some(),
    );
    differ("database.url", a.database.url == b.database.url);
    differ(
        "database.spool_dir",
        a.database.spool_dir == b.database.spool_dir,
    );
    differ("overload", a.overload.settings() == b.overload.settings());
    // the partner sender is made at start (its TLS roots included)
    differ(
        "partner",
        match (&a.partner, &b.partner) {
            (None, None) => true,
            (Some(x), Some(y)) => {
                (
                    &x.name,
                    &x.url,
                    &x.token,
                    &x.ca,
                    x.retry_min_ms,
                    x.retry_max_ms,
                ) == (
                    &y.name,
                    &y.url,
                    &y.token,
                    &y.ca,
                    y.retry_min_ms,
                    y.retry_max_ms,
                ) && running.partner_ca == new.partner_ca
            }
            _ => false,
        },
    );
    differ(
        "log.level/format",
        a.log.level == b.log.level && a.log.format == b.log.format,
    );
    differ(
        "reports",
        a.reports.timezone == b.reports.timezone
            && a.reports.service_level_seconds == b.reports.service_level_seconds,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped configuration with `HOTLINE__…` variables `env`.
    fn shipped(env: &[(&str, &str)]) -> Config {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/hotline.toml");
        Config::load_with_env(
            &path,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn turning_https_on_and_changing_the_partner_need_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.path().join("a.pem"), dir.path().join("a.key"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let (c, k) = (c.display().to_string(), k.display().to_string());
        let plain = shipped(&[]);
        let https = shipped(&[
            ("HOTLINE__ADMIN__TLS_CERT", &c),
            ("HOTLINE__ADMIN__TLS_KEY", &k),
        ]);
        assert!(https.admin_tls.is_some());
        assert_eq!(
            restart_only_changes(&plain, &https),
            ["admin.tls_cert/tls_key"]
        );
        assert_eq!(
            restart_only_changes(&https, &plain),
            ["admin.tls_cert/tls_key"]
        );
        // the same files again: nothing to restart for (the certificate itself is reloaded)
        assert!(restart_only_changes(&https, &https.clone()).is_empty());

        let partner = |ca: Option<&str>| {
            let mut env = vec![
                ("HOTLINE__PARTNER__NAME", "city"),
                ("HOTLINE__PARTNER__URL", "https://127.0.0.1:1"),
                ("HOTLINE__PARTNER__TOKEN", "t"),
            ];
            if let Some(ca) = ca {
                env.push(("HOTLINE__PARTNER__CA", ca));
            }
            shipped(&env)
        };
        assert_eq!(restart_only_changes(&plain, &partner(None)), ["partner"]);
        assert_eq!(
            restart_only_changes(&partner(None), &partner(Some(&c))),
            ["partner"]
        );
        assert!(restart_only_changes(&partner(Some(&c)), &partner(Some(&c))).is_empty());
    }
}
