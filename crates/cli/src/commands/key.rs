//! `lifeboat key list|add|remove`

use anyhow::Result;
use lifeboat_repo::keys::origin_with_label;
use serde_json::json;

use crate::cli::{Global, KeyAddArgs, KeyRemoveArgs};
use crate::commands::init::kdf_cost;
use crate::commands::open_repo;
use crate::output;
use crate::password;

/// Lists key slots.
pub async fn list(g: &Global) -> Result<()> {
    let repo = open_repo(g).await?;
    let keys = repo.list_keys().await?;
    if g.json {
        return output::json(&keys);
    }
    outln!(
        "{:<3} {:<8}  {:<20}  {:<16}  {:<12}  LABEL",
        "",
        "ID",
        "CREATED (UTC)",
        "HOST",
        "USER"
    );
    for k in keys {
        outln!(
            "{:<3} {:<8}  {:<20}  {:<16}  {:<12}  {}",
            if k.current { "*" } else { "" },
            k.id.short(),
            k.created.format("%Y-%m-%d %H:%M:%S"),
            k.host,
            k.user,
            k.label.unwrap_or_default()
        );
    }
    Ok(())
}

/// Adds a passphrase.
pub async fn add(g: &Global, args: &KeyAddArgs) -> Result<()> {
    let repo = open_repo(g).await?;
    let pass = password::read_new(
        &password::new_source(&args.new_password_file),
        "new passphrase",
    )?;
    let id = repo
        .add_key(
            pass.as_bytes(),
            kdf_cost(&args.kdf),
            origin_with_label(args.label.clone()),
        )
        .await?;
    if g.json {
        output::json(&json!({ "added": id }))?;
    } else if !g.quiet {
        outln!("added key {}", id.short());
    }
    Ok(())
}

/// Removes a passphrase.
pub async fn remove(g: &Global, args: &KeyRemoveArgs) -> Result<()> {
    let repo = open_repo(g).await?;
    let id = repo.remove_key(&args.id).await?;
    if g.json {
        output::json(&json!({ "removed": id }))?;
    } else if !g.quiet {
        outln!("removed key {}", id.short());
    }
    Ok(())
}
