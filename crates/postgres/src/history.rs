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

/// Largest history file accepted: real ones hold one short line per timeline.
const MAX_HISTORY_BYTES: usize = 1 << 20;

/// Checks a history file of timeline `tli` before it is archived: readable
/// text in PostgreSQL's format, at least one branch, parent timelines
/// strictly increasing and all below `tli`, switch points never going back,
/// and agreement with the archived history of every parent (a child's file
/// repeats its parent's lines, then adds the parent itself). `archived`
/// gives the parsed history of timelines already in the archive.
pub fn validate(
    tli: u32,
    content: &[u8],
    archived: &dyn Fn(u32) -> Option<Vec<Branch>>,
) -> Result<Vec<Branch>, String> {
    if tli < 2 {
        return Err("timeline 1 has no history file".into());
    }
    if content.len() > MAX_HISTORY_BYTES {
        return Err(format!(
            "it has {} bytes; history files hold a short line per timeline",
            content.len()
        ));
    }
    let text = std::str::from_utf8(content).map_err(|_| "it is not text".to_string())?;
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err("it holds control characters".into());
    }
    let branches = parse(text)?;
    let Some(last) = branches.last() else {
        return Err("it lists no parent timeline".into());
    };
    for pair in branches.windows(2) {
        if pair[1].parent <= pair[0].parent {
            return Err(format!(
                "parent timelines go {} then {}; they must increase",
                pair[0].parent, pair[1].parent
            ));
        }
        if pair[1].switch < pair[0].switch {
            return Err(format!(
                "switch points go back from {} to {}",
                pair[0].switch, pair[1].switch
            ));
        }
    }
    if last.parent >= tli {
        return Err(format!(
            "it names timeline {} as a parent of timeline {tli}",
            last.parent
        ));
    }
    for (i, b) in branches.iter().enumerate() {
        if let Some(theirs) = archived(b.parent)
            && theirs.as_slice() != &branches[..i]
        {
            return Err(format!(
                "it disagrees with the archived history of timeline {}, its parent",
                b.parent
            ));
        }
    }
    Ok(branches)
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

    #[test]
    fn validates_history_files_against_the_archive() {
        let none = |_: u32| None;
        let two = "1\t0/3000158\tno recovery target specified\n";
        assert!(validate(2, two.as_bytes(), &none).is_ok());
        let three = "1\t0/3000158\tx\n2\t0/5000000\ty\n";
        let archived = |t: u32| (t == 2).then(|| parse(two).unwrap_or_default());
        assert!(validate(3, three.as_bytes(), &archived).is_ok());
        let err = |tli: u32, text: &[u8]| validate(tli, text, &archived).err().unwrap_or_default();
        // Forged or damaged: each refused with a reason.
        assert!(err(3, b"1\t0/4000000\tx\n2\t0/5000000\ty\n").contains("disagrees"));
        assert!(err(3, b"").contains("no parent"));
        assert!(err(3, b"\x00\x01garbage").contains("control"));
        assert!(err(3, &[0xff, 0xfe]).contains("not text"));
        assert!(err(2, b"2\t0/3000000\tx\n").contains("as a parent"));
        assert!(err(4, b"2\t0/3000000\tx\n1\t0/5000000\ty\n").contains("increase"));
        assert!(err(4, b"1\t0/5000000\tx\n2\t0/3000000\ty\n").contains("go back"));
        assert!(err(1, b"").contains("timeline 1"));
        assert!(err(3, b"hello world\n").contains("line 1"));
    }
}
