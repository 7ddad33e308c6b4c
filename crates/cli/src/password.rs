//! Reading passphrases from files, commands, the environment or a prompt.

use std::io::IsTerminal;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::exit::UsageError;
use crate::settings::PasswordSource;

fn strip_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

/// Why a passphrase file's permissions are unsafe, if they are: like
/// libpq with `.pgpass`, a file others can read is not used (root-owned
/// files may be group-readable, for a group of service users).
fn unsafe_mode(m: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mode = m.permissions().mode() & 0o777;
    let allowed = if m.uid() == 0 { 0o037 } else { 0o077 };
    (mode & allowed != 0).then(|| format!("{mode:o}"))
}

/// Reads the first line of a passphrase file.
pub fn from_file(path: &Path) -> Result<String> {
    let unreadable = |e: std::io::Error| {
        UsageError(format!(
            "cannot read passphrase file {}: {}",
            path.display(),
            crate::exit::os_message(&e)
        ))
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if let Some(mode) = unsafe_mode(&meta) {
        bail!(UsageError(format!(
            "passphrase file {} has mode {mode}, so other users can read it; refusing to use it \
             (chmod 600 {})",
            path.display(),
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    Ok(strip_newline(
        text.lines().next().unwrap_or_default().to_string(),
    ))
}

fn from_command(cmd: &str) -> Result<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run passphrase command {cmd:?}"))?;
    if !out.status.success() {
        bail!(UsageError(format!(
            "passphrase command {cmd:?} failed ({})",
            out.status
        )));
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|_| UsageError("passphrase command printed non-UTF-8 output".into()))?;
    Ok(strip_newline(text))
}

fn prompt(question: &str) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!(UsageError(
            "no passphrase: set LIFEBOAT_PASSWORD_FILE, LIFEBOAT_PASSWORD_COMMAND or LIFEBOAT_PASSWORD (no terminal to ask on)".into()
        ));
    }
    rpassword::prompt_password(question).context("cannot read the passphrase from the terminal")
}

fn non_empty(p: String) -> Result<String> {
    if p.is_empty() {
        bail!(UsageError("the passphrase is empty".into()));
    }
    Ok(p)
}

/// The passphrase that unlocks an existing repository.
pub fn read(source: &PasswordSource) -> Result<String> {
    non_empty(match source {
        PasswordSource::File(p) => from_file(p)?,
        PasswordSource::Command(c) => from_command(c)?,
        PasswordSource::Env(v) => v.clone(),
        PasswordSource::Prompt => prompt("passphrase: ")?,
    })
}

/// Where a new password comes from: `file` if given, else
/// `LIFEBOAT_NEW_PASSWORD`, else a prompt.
pub fn new_source(file: &Option<std::path::PathBuf>) -> PasswordSource {
    match (file, std::env::var("LIFEBOAT_NEW_PASSWORD")) {
        (Some(f), _) => PasswordSource::File(f.clone()),
        (None, Ok(p)) => PasswordSource::Env(p),
        (None, Err(_)) => PasswordSource::Prompt,
    }
}

/// A new passphrase: from the given source, or asked twice on a terminal.
pub fn read_new(source: &PasswordSource, what: &str) -> Result<String> {
    match source {
        PasswordSource::Prompt => {
            let a = non_empty(prompt(&format!("{what}: "))?)?;
            let b = prompt(&format!("repeat {what}: "))?;
            if a != b {
                bail!(UsageError("the passphrases do not match".into()));
            }
            Ok(a)
        }
        other => read(other),
    }
}
