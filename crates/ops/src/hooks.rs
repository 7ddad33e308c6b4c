//! Hook commands from lifeboat.toml (`sh -c`), for the application side of
//! maintenance and switch-over.

use std::process::{Command, Stdio};

use crate::error::{OpsError, Result};

/// Runs `command` with `sh -c` and extra environment variables; a failing
/// command is an error naming it. `None` does nothing.
pub fn run(what: &str, command: Option<&str>, env: &[(&str, String)]) -> Result<()> {
    let Some(cmd) = command else { return Ok(()) };
    let status = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .status()
        .map_err(|e| OpsError::Hook(format!("cannot run the {what} command {cmd:?}: {e}")))?;
    if !status.success() {
        return Err(OpsError::Hook(format!(
            "the {what} command {cmd:?} failed ({status})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_command() {
        assert!(run("test", None, &[]).is_ok());
        assert!(run("test", Some("test \"$X\" = 1"), &[("X", "1".into())]).is_ok());
        let e = run("switch-over", Some("exit 3"), &[])
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("switch-over") && e.contains("exit 3")),
            "{e:?}"
        );
    }
}
