//! Timeline history files (`00000002.history`): where each timeline branched
//! off its parent.

use crate::lsn::Lsn;

/// One line of a history file: the parent timeline and where it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Branch {
    /// The parent timeline.
    pub parent: u32,
    /// The LSN at which the parent ended and the child began.
    pub switch: Lsn,
}

/// Parses a history file. Lines are `parentTLI<TAB>switchpoint<TAB>reason`;
/// blank lines and `#` comments are ignored; malformed lines are refused.
pub fn parse(text: &str) -> Result<Vec<Branch>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let bad = || {
            format!(
                "line {}: {line:?} is not `parent switchpoint reason`",
                n + 1
            )
        };
        let parent = fields
            .next()
            .and_then(|f| f.parse::<u32>().ok())
            .ok_or_else(bad)?;
        let switch = fields
            .next()
            .and_then(|f| f.parse::<Lsn>().ok())
            .ok_or_else(bad)?;
        out.push(Branch { parent, switch });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_history_files() {
        let text = "1\t0/3000158\tbefore 2026-11-22 10:00:00+00\n\n2\t0/5000000\tno recovery target specified\n";
        let b = parse(text).unwrap_or_default();
        assert_eq!(
            b,
            vec![
                Branch {
                    parent: 1,
                    switch: Lsn(0x300_0158)
                },
                Branch {
                    parent: 2,
                    switch: Lsn(0x500_0000)
                }
            ]
        );
        assert!(parse("x y z").is_err());
    }
}
