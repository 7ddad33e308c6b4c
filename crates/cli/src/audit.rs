//! Records what this command did in the repository's audit log: each verb
//! that writes to the repository, reads data out of it, or changes its keys
//! appends one entry when it ends (its outcome and exit code included), in
//! the repository it opened. Reading commands (`snapshots`, `check`,
//! `status`, …) and WAL archiving (once per segment) are not recorded.

use std::collections::BTreeMap;
use std::sync::Mutex;

use lifeboat_repo::Repository;
use lifeboat_repo::audit::AuditRecord;

use crate::cli::{
    BackupCommand, Command, KeyCommand, RepairCommand, RestoreCommand, TokenCommand, UserCommand,
};
use crate::exit;

/// The repository this command opened first (the one its entry goes to).
static OPENED: Mutex<Option<Repository>> = Mutex::new(None);
/// Facts a command adds to its entry (the snapshot it made, …).
static DETAILS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// Arguments recorded as something else (an erased subject's key as its hash).
static CONCEALED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Records `argument` in this command's entry as `instead` (for values the
/// repository must never hold in the clear, like an erased subject's key).
pub fn conceal(argument: &str, instead: String) {
    if let Ok(mut c) = CONCEALED.lock() {
        c.push((argument.to_string(), instead));
    }
}

/// Remembers the repository a command opened (the first one counts: `copy`
/// records in the repository it copies from).
pub fn opened(repo: &Repository) {
    if let Ok(mut o) = OPENED.lock()
        && o.is_none()
    {
        *o = Some(repo.clone());
    }
}

/// Adds a fact to this command's entry.
pub fn detail(key: &str, value: impl Into<String>) {
    if let Ok(mut d) = DETAILS.lock() {
        d.insert(key.to_string(), value.into());
    }
}

/// The action an entry names for `command`, or `None` when it is not
/// recorded (reading commands, and dry runs: they change nothing and read
/// no data out).
pub fn action(command: &Command) -> Option<&'static str> {
    if std::env::args().any(|a| a == "--dry-run") {
        return None;
    }
    Some(match command {
        Command::Init(_) => "init",
        Command::Backup(b) => match &b.what {
            Some(BackupCommand::Files(_)) => "backup files",
            Some(BackupCommand::Postgres(_)) => "backup postgres",
            Some(BackupCommand::Bucket(_)) => "backup bucket",
            None => "backup",
        },
        Command::Restore(RestoreCommand::Files(_)) => "restore files",
        Command::Restore(RestoreCommand::Bucket(_)) => "restore bucket",
        Command::Restore(RestoreCommand::Postgres(_)) => "restore postgres",
        Command::Export(_) => "export",
        Command::Drill(_) => "drill",
        Command::Recover(_) => "recover",
        Command::Copy(_) => "copy",
        Command::Forget(_) => "forget",
        Command::Pin(_) => "pin",
        Command::Unpin(_) => "unpin",
        Command::Prune(_) => "prune",
        Command::Erase(_) => "erase",
        Command::Erasures(a) if a.replay => "erasures replay",
        Command::Key(KeyCommand::Add(_)) => "key add",
        Command::Key(KeyCommand::Remove(_)) => "key remove",
        Command::Repair(RepairCommand::Index) => "repair index",
        Command::Repair(RepairCommand::Plans) => "repair plans",
        Command::User(UserCommand::Add(_)) => "user add",
        Command::User(UserCommand::Remove(_)) => "user remove",
        Command::User(UserCommand::Passwd(_)) => "user passwd",
        Command::Token(TokenCommand::Create(_)) => "token create",
        Command::Token(TokenCommand::Revoke(_)) => "token revoke",
        _ => return None,
    })
}

/// Appends the entry for `action` ending in `result` to the repository the
/// command opened. A command that never opened one (a wrong passphrase, a
/// missing repository) leaves nothing: it could not have read or changed
/// anything. Failing to record is a warning, not the command's failure.
pub async fn record(action: &str, result: &anyhow::Result<u8>) {
    let Some(repo) = OPENED.lock().ok().and_then(|o| o.clone()) else {
        return;
    };
    let mut details = DETAILS.lock().map(|d| d.clone()).unwrap_or_default();
    if std::env::var_os("LIFEBOAT_DIE_WITH_PARENT").is_some() {
        details.insert("started_by".into(), "lifeboat serve".into());
    }
    let me = lifeboat_repo::repository::local_origin(None);
    let (outcome, code, error) = match result {
        Ok(0) => ("ok", 0, None),
        Ok(code) => ("failed", *code, None),
        Err(e) => ("failed", exit::code(e), Some(exit::message(e))),
    };
    let record = AuditRecord {
        actor: format!("{}@{}", me.user, me.host),
        from: me.host,
        action: action.to_string(),
        args: arguments(),
        outcome: outcome.into(),
        exit: code,
        error,
        details,
    };
    if let Err(e) = repo.append_audit(record).await {
        eprintln!("warning: this {action} could not be recorded in the audit log: {e}");
    }
}

/// The command line after the program name, with connection strings that
/// carry a password replaced.
fn arguments() -> Vec<String> {
    let concealed = CONCEALED.lock().map(|c| c.clone()).unwrap_or_default();
    std::env::args()
        .skip(1)
        .map(|a| match concealed.iter().find(|(arg, _)| *arg == a) {
            Some((_, instead)) => instead.clone(),
            None => lifeboat_postgres::sql::loggable_argument(&a),
        })
        .collect()
}
