//! The guard in front of restores into protected targets: refused (exit 2)
//! with the command that asks for approval, unless this process is the
//! daemon running that approved request.

use anyhow::{Result, bail};
use lifeboat_ops::access::protect::{Destination, protected_by};
use lifeboat_ops::access::requests::{RequestStore, shell_word};

use crate::cli::Global;
use crate::exit::UsageError;
use crate::settings::FileSettings;

/// This command's arguments from its verb (`restore`, `recover` or
/// `forget`) on.
fn plan_command() -> Vec<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let from = args
        .iter()
        .position(|a| a == "restore" || a == "recover" || a == "forget")
        .unwrap_or(0);
    args[from..].to_vec()
}

/// Refuses a restore into `dest` when a protected source owns it.
pub async fn guard(g: &Global, dest: Destination<'_>, what: &str) -> Result<()> {
    let file = FileSettings::load(g)?;
    let Some(source) = protected_by(&file.source, dest) else {
        return Ok(());
    };
    let name = source.name.get_ref().clone();
    let required = file.approvals.required.unwrap_or(1);
    refuse_unless_approved(
        g,
        &name,
        &format!(
            "{what} is the protected target of source {name:?}: a restore into it needs {required} \
             other person's approval"
        ),
    )
    .await
}

/// Refuses a `forget` that removes restore points of protected sources
/// which the configured retention promises to keep (`breaks`: the source
/// and what would go).
pub async fn guard_deletion(g: &Global, source: &str, breaks: &str) -> Result<()> {
    let required = FileSettings::load(g)?.approvals.required.unwrap_or(1);
    refuse_unless_approved(
        g,
        source,
        &format!(
            "this would remove restore points of the protected source {source:?} that its retention \
             policy promises to keep ({breaks}): that needs {required} other person's approval"
        ),
    )
    .await
}

/// Lets the command run when it is the daemon running an approved request
/// for exactly this command; otherwise refuses (exit 2) with `why` and the
/// command that asks for approval.
async fn refuse_unless_approved(g: &Global, name: &str, why: &str) -> Result<()> {
    let name = name.to_string();
    if let (Ok(id), Some(dir)) = (
        std::env::var("LIFEBOAT_APPROVED_REQUEST"),
        std::env::var_os("LIFEBOAT_STATE_DIR"),
    ) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if RequestStore::new(std::path::Path::new(&dir)).authorizes(&id, &args)? {
            crate::audit::detail("request", id);
            return Ok(());
        }
        bail!(UsageError(format!(
            "request {id} does not authorize this command: it is not running, or its plan is another"
        )));
    }
    // Unlock the repository so that the refusal is recorded.
    let _ = crate::commands::open_repo(g).await;
    crate::audit::detail("protected", name.clone());
    let quoted: Vec<String> = plan_command().iter().map(|a| shell_word(a)).collect();
    bail!(UsageError(format!(
        "{why}. Ask for it through the daemon:\n  lifeboat request -- {}\n\
         An approver then runs `lifeboat requests` and `lifeboat approve ID --plan HASH`, and the daemon runs it.",
        quoted.join(" ")
    )))
}
