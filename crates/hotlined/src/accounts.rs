//! Personal accounts on the daemon's side: password hashing (argon2id), the password and
//! login rules, random secrets (session ids, CSRF tokens, API tokens) and their hashes, and
//! the demo accounts of a first start on a loopback admin address. The store
//! (`appeals::access`) only ever sees hashes.
//!
//! One place checks an account's fields ([`check_new_user`], [`check_password`]) for the
//! API, the CLI and the demo accounts alike, and names the field a problem is in.

use appeals::{AuditEntry, NewUser, Role, Store};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Longest login accepted.
pub const MAX_LOGIN: usize = 64;
/// Longest display name accepted.
pub const MAX_NAME: usize = 200;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
/// Longest password accepted (argon2 takes any length; this bounds the work per request).
pub const MAX_PASSWORD: usize = 256;
/// Longest organisation id accepted.
pub const MAX_ORGANISATION: usize = 64;

/// A problem with one field of an account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field, as the API and the form name it.
    pub field: &'static str,
    /// What is wrong (English; pages say it in Russian).
    pub message: String,
}

fn field(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// The argon2id hash (PHC string, random salt) of a password.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches the PHC string `hash`; a malformed hash matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash no password matches, verified in place of a missing account's so that a login
/// that does not exist takes as long to refuse as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password(&random_secret()).unwrap_or_else(|_| {
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG".into()
        })
    })
}

/// 32 random bytes, URL-safe base64 without padding (session ids, CSRF tokens).
pub fn random_secret() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A new API token: `hlt_` and 32 random bytes.
pub fn new_api_token() -> String {
    format!("hlt_{}", random_secret())
}

/// SHA-256 of a session id or token, hex: what the database keeps.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A login: 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn check_login(login: &str) -> Result<(), FieldError> {
    let ok = !login.is_empty()
        && login.len() <= MAX_LOGIN
        && login
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        && login
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(field(
            "login",
            format!("1 to {MAX_LOGIN} of a-z, 0-9, '.', '_', '-', starting with a letter or digit"),
        ))
    }
}

/// A display name: 1–200 characters on one line.
pub fn check_display_name(name: &str) -> Result<(), FieldError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > MAX_NAME || n.chars().any(char::is_control) {
        Err(field(
            "display_name",
            format!("1 to {MAX_NAME} characters on one line"),
        ))
    } else {
        Ok(())
    }
}

/// The password rules: 10–256 characters, not the login, not one repeated character, not
/// a well-known password.
pub fn check_password(login: &str, password: &str) -> Result<(), FieldError> {
    const COMMON: &[&str] = &[
        "1234567890",
        "0123456789",
        "qwertyuiop",
        "password123",
        "passw0rd123",
        "administrator",
        "change-me-now",
        "qwerty123456",
        "1q2w3e4r5t",
        "йцукенгшщз",
    ];
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(field(
            "password",
            format!("too short: at least {MIN_PASSWORD} characters"),
        ));
    }
    if n > MAX_PASSWORD {
        return Err(field(
            "password",
            format!("too long: at most {MAX_PASSWORD} characters"),
        ));
    }
    let lower = password.to_lowercase();
    if lower == login.to_lowercase()
        || lower.contains(&login.to_lowercase()) && n < 2 * MIN_PASSWORD
    {
        return Err(field("password", "too close to the login"));
    }
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err(field("password", "one character repeated"));
    }
    if COMMON.contains(&lower.as_str()) {
        return Err(field("password", "a well-known password"));
    }
    Ok(())
}

/// The organisation rule: the organisation role needs the id of an organisation of
/// `organisations.toml` (`dir`), the other roles have none.
pub fn check_organisation(
    role: Role,
    org: Option<&str>,
    dir: &crate::directory::Directory,
) -> Result<(), FieldError> {
    match (role, org.map(str::trim)) {
        (Role::Organisation, Some(o))
            if !o.is_empty()
                && o.chars().count() <= MAX_ORGANISATION
                && !o.chars().any(char::is_control) =>
        {
            if dir.organisation(o).is_some() {
                Ok(())
            } else {
                Err(field(
                    "organisation_id",
                    format!("{o:?} is not an organisation of organisations.toml"),
                ))
            }
        }
        (Role::Organisation, _) => Err(field(
            "organisation_id",
            format!("the organisation role needs an organisation_id of 1 to {MAX_ORGANISATION} characters"),
        )),
        (_, None) => Ok(()),
        (_, Some(_)) => Err(field(
            "organisation_id",
            "only the organisation role has an organisation_id",
        )),
    }
}

/// A role by name.
pub fn parse_role(s: &str) -> Result<Role, FieldError> {
    s.parse().map_err(|_| {
        field(
            "role",
            format!("{s:?} is not a role: operator, supervisor, admin or organisation"),
        )
    })
}

/// Checks a whole new account.
pub fn check_new_user(
    login: &str,
    display_name: &str,
    role: Role,
    organisation_id: Option<&str>,
    password: &str,
    dir: &crate::directory::Directory,
) -> Result<(), FieldError> {
    check_login(login)?;
    check_display_name(display_name)?;
    check_organisation(role, organisation_id, dir)?;
    check_password(login, password)
}

/// The accounts a first start on a loopback admin address makes: `supervisor` and `admin`
/// first (so they can log in soonest), then every operator of the operators file with a
/// plain password (same login, name and password). Their passwords are demo values, not
/// checked against the rules.
pub fn demo_accounts(operators: &[(String, String, Option<String>)]) -> Vec<(NewUser, String)> {
    let mut v: Vec<(NewUser, String)> = [
        (
            "supervisor",
            "Супервизор (демо)",
            Role::Supervisor,
            "supervisor-secret",
        ),
        ("admin", "Администратор (демо)", Role::Admin, "admin-secret"),
    ]
    .into_iter()
    .map(|(login, name, role, password)| {
        (
            NewUser {
                id: login.into(),
                display_name: name.into(),
                role,
                organisation_id: None,
                password_hash: String::new(),
            },
            password.into(),
        )
    })
    .collect();
    v.extend(operators.iter().filter_map(|(login, name, password)| {
        let p = password.clone()?;
        check_login(login).ok()?;
        Some((
            NewUser {
                id: login.clone(),
                display_name: name.clone(),
                role: Role::Operator,
                organisation_id: None,
                password_hash: String::new(),
            },
            p,
        ))
    }));
    v
}

/// The hashes of `passwords`, in order, computed on the blocking pool by as many workers as
/// the machine has cores (argon2id is meant to be slow: a thousand demo operators hashed one
/// by one took most of a minute). `None` where a hash failed.
pub async fn hash_passwords(passwords: Vec<String>) -> Vec<Option<String>> {
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let per_worker = passwords.len().div_ceil(workers).max(1);
    let tasks = passwords.chunks(per_worker).map(|chunk| {
        let chunk = chunk.to_vec();
        let n = chunk.len();
        let task = tokio::task::spawn_blocking(move || {
            chunk
                .iter()
                .map(|p| hash_password(p).ok())
                .collect::<Vec<_>>()
        });
        async move {
            // a worker that panicked hashed nothing of its chunk
            task.await.unwrap_or_else(|_| vec![None; n])
        }
    });
    let mut hashes = Vec::new();
    for h in futures_util::future::join_all(tasks).await {
        hashes.extend(h);
    }
    hashes
}

/// Makes the demo accounts when the database has no account at all; returns the logins
/// made (none when there were accounts already). The passwords are hashed in parallel
/// ([`hash_passwords`]); the accounts are then written one by one, each with its audit row.
pub async fn seed_demo(
    store: &Store,
    operators: &[(String, String, Option<String>)],
) -> Result<Vec<String>, appeals::Error> {
    let (users, _) = store.user_counts().await?;
    if users > 0 {
        return Ok(Vec::new());
    }
    let (accounts, passwords): (Vec<NewUser>, Vec<String>) =
        demo_accounts(operators).into_iter().unzip();
    let hashes = hash_passwords(passwords).await;
    let mut made = Vec::new();
    for (mut u, hash) in accounts.into_iter().zip(hashes) {
        let Some(hash) = hash else { continue };
        u.password_hash = hash;
        let audit = AuditEntry {
            at: chrono::Utc::now(),
            actor: "system".into(),
            role: None,
            address: None,
            action: "user_created".into(),
            target: Some(u.id.clone()),
            details: serde_json::json!({ "role": u.role, "display_name": u.display_name, "demo": true }),
        };
        match store.create_user(&u, &audit).await {
            Ok(_) => made.push(u.id.clone()),
            Err(appeals::Error::UserExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(made)
}

/// How many logins the demo accounts' log line names before "and N more".
pub const DEMO_LOGINS_SHOWN: usize = 8;

/// The logins the demo accounts' log line shows: the first [`DEMO_LOGINS_SHOWN`], then how
/// many more (never a password).
pub fn demo_logins_shown(made: &[String]) -> String {
    let shown = made
        .iter()
        .take(DEMO_LOGINS_SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    match made.len().saturating_sub(DEMO_LOGINS_SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "every hash has its own salt");
        assert!(!a.contains("correct"));
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse batterY", &a));
        assert!(!verify_password("anything", "not a hash"));
        assert!(!verify_password("anything", dummy_hash()));
    }

    #[test]
    fn password_rules_name_the_field() {
        assert!(check_password("ivanova", "Zimа-2026-snow").is_ok());
        for weak in [
            "short",
            "aaaaaaaaaaaa",
            "1234567890",
            "ivanova123",
            "IVANOVA",
        ] {
            let e = check_password("ivanova", weak).unwrap_err();
            assert_eq!(e.field, "password", "{weak}");
        }
        assert_eq!(
            check_password("x", &"a1".repeat(200)).unwrap_err().field,
            "password"
        );
    }

    #[test]
    fn logins_names_roles_and_organisations() {
        assert!(check_login("op1").is_ok());
        assert!(check_login("ivanova.a-b_c").is_ok());
        for bad in ["", "Op1", "-x", "имя", "a b", &"a".repeat(65)] {
            assert_eq!(check_login(bad).unwrap_err().field, "login", "{bad:?}");
        }
        assert!(check_display_name("Оператор 1").is_ok());
        assert_eq!(check_display_name(" ").unwrap_err().field, "display_name");
        assert_eq!(
            check_display_name(&"я".repeat(201)).unwrap_err().field,
            "display_name"
        );
        assert_eq!(parse_role("root").unwrap_err().field, "role");
        let dir = crate::directory::Directory {
            organisations: vec![crate::directory::Organisation {
                id: "tc-lenin".into(),
                name: "ТЦСОН".into(),
                kind: crate::directory::OrgKind::TerritorialCentre,
                districts: vec![],
                services: vec![],
                phone: None,
                phone_is_example: false,
                partner_url: None,
            }],
            ..Default::default()
        };
        assert!(check_organisation(Role::Organisation, Some("tc-lenin"), &dir).is_ok());
        let unknown = check_organisation(Role::Organisation, Some("tc-nowhere"), &dir).unwrap_err();
        assert_eq!(unknown.field, "organisation_id");
        assert!(unknown.message.contains("organisations.toml"), "{unknown}");
        assert!(check_organisation(Role::Organisation, None, &dir).is_err());
        assert!(check_organisation(Role::Operator, Some("x"), &dir).is_err());
    }

    #[test]
    fn secrets_are_random_and_hashed() {
        let t = new_api_token();
        assert!(t.starts_with("hlt_") && t.len() > 40);
        assert_ne!(t, new_api_token());
        assert_eq!(secret_hash(&t).len(), 64);
        assert_ne!(secret_hash(&t), t);
    }

    #[test]
    fn demo_accounts_follow_the_operators_file() {
        let ops = vec![
            ("op1".into(), "Оператор 1".into(), Some("op1-secret".into())),
            ("op9".into(), "Без пароля".into(), None),
        ];
        let d = demo_accounts(&ops);
        let ids: Vec<&str> = d.iter().map(|(u, _)| u.id.as_str()).collect();
        assert_eq!(ids, ["supervisor", "admin", "op1"]);
        assert_eq!(d[2].1, "op1-secret");
        assert_eq!(d[1].0.role, Role::Admin);
    }
}
