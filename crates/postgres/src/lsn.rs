//! Log sequence numbers (`X/Y` positions in the WAL).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A WAL position, written `X/Y` in hex like PostgreSQL does.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Number of the segment holding this position.
    pub fn segment(self, seg_size: u64) -> u64 {
        self.0 / seg_size.max(1)
    }

    /// Start of segment `segno`.
    pub fn of_segment(segno: u64, seg_size: u64) -> Self {
        Lsn(segno.saturating_mul(seg_size))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// An LSN that is not `X/Y` in hex.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a WAL position (expected hex X/Y, e.g. 0/16B3748)")]
pub struct BadLsn(pub String);

impl FromStr for Lsn {
    type Err = BadLsn;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadLsn(s.to_string());
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
        if hi > 0xFFFF_FFFF || lo > 0xFFFF_FFFF {
            return Err(bad());
        }
        Ok(Lsn(hi << 32 | lo))
    }
}

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_like_postgres() {
        let l: Lsn = "16/B374D848".parse().unwrap_or_default();
        assert_eq!(l.0, 0x16_B374_D848);
        assert_eq!(l.to_string(), "16/B374D848");
        assert_eq!(Lsn(0x1_0000_0000).to_string(), "1/0");
        assert!("16B374D848".parse::<Lsn>().is_err());
        assert!("1/G".parse::<Lsn>().is_err());
        assert!("100000000/0".parse::<Lsn>().is_err());
        assert_eq!(l.segment(16 << 20), 0x16_B374_D848 / (16 << 20));
    }

    proptest::proptest! {
        #[test]
        fn no_target_lsn_panics_and_valid_ones_read_back(s in "\\PC*", n in proptest::num::u64::ANY) {
            let _ = s.parse::<Lsn>();
            let text = Lsn(n).to_string();
            proptest::prop_assert_eq!(text.parse::<Lsn>().ok(), Some(Lsn(n)));
        }
    }
}
