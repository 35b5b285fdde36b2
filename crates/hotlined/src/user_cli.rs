//! `hotlined user add|passwd|disable|enable|list`: accounts straight in the database named by
//! the configuration (the daemon need not run). Passwords are read from the terminal
//! without echo (asked twice), or as one line from stdin when it is not a terminal — never
//! from the command line. Every change is in the audit log with the actor `cli`.

use std::io::{BufRead, IsTerminal};

use anyhow::Context;
use appeals::{AuditEntry, NewUser, Role, Store, UserChange};
use clap::Subcommand;
use serde_json::json;

use crate::accounts;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Make an account; the password is asked for (or read from stdin).
    Add {
        /// The login: a-z, 0-9, '.', '_', '-'.
        login: String,
        /// operator, supervisor, admin or organisation.
        #[arg(long)]
        role: String,
        /// The name shown on screen (default: the operator's name in operators.toml, or
        /// the login).
        #[arg(long)]
        name: Option<String>,
        /// The organisation of an organisation account.
        #[arg(long)]
        organisation: Option<String>,
    },
    /// Set a new password (asked for, or read from stdin); ends the account's sessions.
    Passwd {
        /// The login.
        login: String,
    },
    /// Disable an account: it cannot log in, its sessions end and its tokens stop working.
    Disable {
        /// The login.
        login: String,
    },
    /// Enable a disabled account again.
    Enable {
        /// The login.
        login: String,
    },
    /// List the accounts.
    List,
}

fn read_password(login: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password(format!("password for {login}: "))
            .context("reading the password")?;
        let b = rpassword::prompt_password("the same again: ").context("reading the password")?;
        anyhow::ensure!(a == b, "the two passwords differ; nothing changed");
        Ok(a)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

fn audit(action: &str, target: &str, details: serde_json::Value) -> AuditEntry {
    AuditEntry {
        at: chrono::Utc::now(),
        actor: "cli".into(),
        role: None,
        address: None,
        action: action.into(),
        target: Some(target.into()),
        details,
    }
}

/// Runs one `hotlined user …` command.
pub fn run(config: &crate::config::Config, cmd: UserCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let store = Store::connect(&config.main.database.url)
            .await
            .context("cannot open the database")?;
        let r = command(config, &store, cmd).await;
        store.close().await;
        r
    })
}

async fn command(
    config: &crate::config::Config,
    store: &Store,
    cmd: UserCommand,
) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            login,
            role,
            name,
            organisation,
        } => {
            let role = accounts::parse_role(&role)?;
            let name = name
                .or_else(|| {
                    config
                        .operators
                        .iter()
                        .find(|o| o.login == login)
                        .map(|o| o.name.clone())
                })
                .unwrap_or_else(|| login.clone());
            accounts::check_login(&login)?;
            accounts::check_display_name(&name)?;
            accounts::check_organisation(role, organisation.as_deref(), &config.directory)?;
            let password = read_password(&login)?;
            accounts::check_password(&login, &password)?;
            let hash = accounts::hash_password(&password)
                .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
            let u = NewUser {
                id: login.clone(),
                display_name: name.clone(),
                role,
                organisation_id: organisation.clone(),
                password_hash: hash,
            };
            store
                .create_user(
                    &u,
                    &audit(
                        "user_created",
                        &login,
                        json!({ "role": role, "display_name": name, "organisation_id": organisation }),
                    ),
                )
                .await?;
            println!("user {login} ({role}) made");
        }
        UserCommand::Passwd { login } => {
            anyhow::ensure!(store.user(&login).await?.is_some(), "no user {login:?}");
            let password = read_password(&login)?;
            accounts::check_password(&login, &password)?;
            let hash = accounts::hash_password(&password)
                .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
            store
                .update_user(
                    &login,
                    &UserChange {
                        password_hash: Some(hash),
                        ..UserChange::default()
                    },
                    &audit("user_changed", &login, json!({ "password": "changed" })),
                )
                .await?;
            println!("password of {login} changed; their sessions are ended");
        }
        UserCommand::Disable { login } => set_disabled(store, &login, true).await?,
        UserCommand::Enable { login } => set_disabled(store, &login, false).await?,
        UserCommand::List => {
            for u in store.users().await? {
                println!(
                    "{:<20} {:<13} {}{}{}",
                    u.id,
                    u.role.as_str(),
                    u.display_name,
                    u.organisation_id
                        .map(|o| format!(" [{o}]"))
                        .unwrap_or_default(),
                    if u.disabled { " (disabled)" } else { "" }
                );
            }
        }
    }
    Ok(())
}

async fn set_disabled(store: &Store, login: &str, disabled: bool) -> anyhow::Result<()> {
    let Some(u) = store.user(login).await? else {
        anyhow::bail!("no user {login:?}");
    };
    if disabled && u.role == Role::Admin && !u.disabled && store.user_counts().await?.1 <= 1 {
        anyhow::bail!("{login} is the last enabled admin: make another admin first");
    }
    store
        .update_user(
            login,
            &UserChange {
                disabled: Some(disabled),
                ..UserChange::default()
            },
            &audit("user_changed", login, json!({ "disabled": disabled })),
        )
        .await?;
    println!(
        "{login} {}",
        if disabled {
            "disabled; their sessions are ended"
        } else {
            "enabled"
        }
    );
    Ok(())
}
