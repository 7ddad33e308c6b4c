//! `user` and `token`: the daemon's users, roles and API tokens. Each
//! change opens the repository first, so that it is recorded in the audit
//! log like any other change.

use anyhow::Result;
use lifeboat_ops::access::{Role, UserStore};
use serde_json::json;

use crate::cli::{
    Global, StateDirArg, TokenCommand, TokenCreateArgs, TokenRevokeArgs, UserAddArgs, UserCommand,
    UserNameArgs,
};
use crate::commands::open_repo;
use crate::commands::serve::state_dir;
use crate::exit::UsageError;
use crate::output;
use crate::password;
use crate::settings::FileSettings;

fn store(g: &Global, dir: &StateDirArg) -> Result<UserStore> {
    let file = FileSettings::load(g)?;
    Ok(UserStore::new(&state_dir(dir.state_dir.as_ref(), &file)))
}

fn new_password(file: &Option<std::path::PathBuf>, whose: &str) -> Result<String> {
    password::read_new(
        &password::new_source(file),
        &format!("password for {whose}"),
    )
}

/// `lifeboat user …`.
pub async fn user(g: &Global, command: &UserCommand) -> Result<()> {
    match command {
        UserCommand::Add(a) => add(g, a).await,
        UserCommand::List(d) => list(g, d),
        UserCommand::Remove(a) => remove(g, a).await,
        UserCommand::Passwd(a) => passwd(g, a).await,
    }
}

async fn add(g: &Global, args: &UserAddArgs) -> Result<()> {
    let role = Role::parse(&args.role).ok_or_else(|| {
        UsageError(format!(
            "--role {:?}: the roles are viewer, operator, restorer, approver and admin",
            args.role
        ))
    })?;
    let store = store(g, &args.dir)?;
    open_repo(g).await?;
    let password = new_password(&args.password_file, &args.name)?;
    store.add_user(&args.name, role, &password)?;
    crate::audit::detail("user", args.name.clone());
    crate::audit::detail("role", role.name());
    if g.json {
        output::json(&json!({ "added": args.name, "role": role }))?;
    } else if !g.quiet {
        outln!(
            "added {} ({}) to {}",
            args.name,
            role.name(),
            store.path().display()
        );
    }
    Ok(())
}

fn list(g: &Global, dir: &StateDirArg) -> Result<()> {
    let users = store(g, dir)?.users()?;
    if g.json {
        return output::json(&users);
    }
    if users.is_empty() {
        outln!("no users: the API is open to whoever reaches its address (127.0.0.1 by default)");
        return Ok(());
    }
    outln!("{:<24} {:<10} {:<20} tokens", "user", "role", "added (UTC)");
    for u in users {
        outln!(
            "{:<24} {:<10} {:<20} {}",
            u.name,
            u.role.name(),
            u.created.format("%Y-%m-%d %H:%M:%S"),
            u.tokens
        );
    }
    Ok(())
}

async fn remove(g: &Global, args: &UserNameArgs) -> Result<()> {
    let store = store(g, &args.dir)?;
    open_repo(g).await?;
    crate::audit::detail("user", args.name.clone());
    store.remove_user(&args.name)?;
    if !g.quiet && !g.json {
        outln!("removed {} and revoked their tokens", args.name);
    } else if g.json {
        output::json(&json!({ "removed": args.name }))?;
    }
    Ok(())
}

async fn passwd(g: &Global, args: &UserNameArgs) -> Result<()> {
    let store = store(g, &args.dir)?;
    open_repo(g).await?;
    crate::audit::detail("user", args.name.clone());
    if !store.users()?.iter().any(|u| u.name == args.name) {
        return Err(lifeboat_ops::access::AccessError::UnknownUser(args.name.clone()).into());
    }
    let password = new_password(&args.password_file, &args.name)?;
    store.set_password(&args.name, &password)?;
    if !g.quiet && !g.json {
        outln!("changed the password of {}", args.name);
    } else if g.json {
        output::json(&json!({ "changed": args.name }))?;
    }
    Ok(())
}

/// `lifeboat token …`.
pub async fn token(g: &Global, command: &TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create(a) => create(g, a).await,
        TokenCommand::List(d) => tokens(g, d),
        TokenCommand::Revoke(a) => revoke(g, a).await,
    }
}

async fn create(g: &Global, args: &TokenCreateArgs) -> Result<()> {
    let store = store(g, &args.dir)?;
    open_repo(g).await?;
    let (info, token) = store.create_token(&args.user, args.label.as_deref())?;
    crate::audit::detail("user", args.user.clone());
    crate::audit::detail("token", info.id.clone());
    if g.json {
        output::json(&json!({ "id": info.id, "user": info.user, "token": token }))?;
    } else {
        outln!("{token}");
        if !g.quiet {
            eprintln!(
                "token {} for {}: shown once, keep it safe (send it as `Authorization: Bearer …`)",
                info.id, info.user
            );
        }
    }
    Ok(())
}

fn tokens(g: &Global, dir: &StateDirArg) -> Result<()> {
    let tokens = store(g, dir)?.tokens()?;
    if g.json {
        return output::json(&tokens);
    }
    if tokens.is_empty() {
        outln!("no tokens");
        return Ok(());
    }
    outln!(
        "{:<16} {:<20} {:<20} {:<20} label",
        "id",
        "user",
        "created (UTC)",
        "revoked"
    );
    for t in tokens {
        outln!(
            "{:<16} {:<20} {:<20} {:<20} {}",
            t.id,
            t.user,
            t.created.format("%Y-%m-%d %H:%M:%S"),
            t.revoked
                .map(|r| r.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_else(|| "-".into()),
            t.label.unwrap_or_default()
        );
    }
    Ok(())
}

async fn revoke(g: &Global, args: &TokenRevokeArgs) -> Result<()> {
    let store = store(g, &args.dir)?;
    open_repo(g).await?;
    let info = store.revoke_token(&args.id)?;
    crate::audit::detail("token", info.id.clone());
    crate::audit::detail("user", info.user.clone());
    if g.json {
        output::json(&json!({ "revoked": info.id, "user": info.user }))?;
    } else if !g.quiet {
        outln!("revoked token {} of {}", info.id, info.user);
    }
    Ok(())
}
