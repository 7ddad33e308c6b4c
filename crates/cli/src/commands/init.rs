//! `lifeboat init`

use anyhow::Result;
use lifeboat_format::keyslot::KdfCost;
use lifeboat_repo::InitOptions;
use lifeboat_repo::repository::local_origin;
use serde_json::json;

use crate::cli::{Global, InitArgs, KdfArgs};
use crate::output;
use crate::password;
use crate::settings::Settings;

/// The Argon2id cost chosen on the command line.
pub fn kdf_cost(k: &KdfArgs) -> KdfCost {
    KdfCost {
        memory_kib: k.kdf_memory * 1024,
        iterations: k.kdf_iterations,
        parallelism: 1,
    }
}

/// Creates a repository.
pub async fn run(g: &Global, args: &InitArgs) -> Result<()> {
    let s = Settings::resolve(g)?;
    let storage = lifeboat_storage::open(&s.location, &s.storage)?;
    let pass = password::read_new(&s.password, "new repository passphrase")?;
    let repo = lifeboat_repo::Repository::init(
        storage,
        &s.location_text,
        pass.as_bytes(),
        InitOptions {
            kdf: kdf_cost(&args.kdf),
            pack_size: args.pack_size << 20,
            origin: local_origin(None),
            object_lock_days: args.object_lock_days,
        },
    )
    .await?;
    crate::audit::opened(&repo);
    if g.json {
        output::json(&json!({
            "repository": repo.location(),
            "id": repo.config().id,
            "key": repo.slot(),
        }))?;
    } else if !g.quiet {
        outln!(
            "created repository {} at {}\nkeep the passphrase safe: without it the data cannot be read",
            repo.config().id.short(),
            repo.location()
        );
    }
    Ok(())
}
