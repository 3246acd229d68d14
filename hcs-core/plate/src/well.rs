//! Well identifiers and image components.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A well: row (A = 0) and column (1-based), printed as `A01`.
///
/// Rows beyond Z continue as AA, AB, … (1536-well plates have 32 rows, A–AF).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WellId {
    /// Row index, 0 = A.
    pub row: u16,
    /// Column number, 1-based.
    pub col: u16,
}

/// A well name that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a well name (expected a row letter and a column number, like A01, P24 or AF48)")]
pub struct WellParseError(pub String);

impl WellId {
    /// A well from a 0-based row and 1-based column.
    pub const fn new(row: u16, col: u16) -> Self {
        Self { row, col }
    }

    /// The row letters (A, B, …, Z, AA, AB, …).
    pub fn row_letters(&self) -> String {
        let mut n = u32::from(self.row) + 1;
        let mut letters = Vec::new();
        while n > 0 {
            let rem = ((n - 1) % 26) as u8;
            letters.push(char::from(b'A' + rem));
            n = (n - 1) / 26;
        }
        letters.iter().rev().collect()
    }
}

impl fmt::Display for WellId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:02}", self.row_letters(), self.col)
    }
}

impl FromStr for WellId {
    type Err = WellParseError;

    /// Parses `A01`, `a1`, `AF48`, and Opera-style `R01C01` / `r1c12`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || WellParseError(s.to_owned());
        let upper = s.trim().to_ascii_uppercase();
        if let Some(rest) = upper.strip_prefix('R')
            && let Some((r, c)) = rest.split_once('C')
            && let (Ok(r), Ok(c)) = (r.parse::<u16>(), c.parse::<u16>())
            && r >= 1
            && c >= 1
        {
            return Ok(WellId::new(r - 1, c));
        }
        let split = upper.find(|ch: char| ch.is_ascii_digit()).ok_or_else(bad)?;
        let (letters, digits) = upper.split_at(split);
        if letters.is_empty() || letters.len() > 2 || !letters.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(bad());
        }
        let row = letters.bytes().fold(0u32, |acc, b| acc * 26 + u32::from(b - b'A' + 1)) - 1;
        let col: u16 = digits.parse().map_err(|_| bad())?;
        if col == 0 {
            return Err(bad());
        }
        Ok(WellId::new(u16::try_from(row).map_err(|_| bad())?, col))
    }
}

impl Serialize for WellId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WellId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The axes an image is indexed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    /// The well.
    Well,
    /// The field of view (tile) within a well.
    Site,
    /// The channel (wavelength).
    Channel,
    /// The focal plane.
    #[serde(rename = "z_index")]
    Z,
    /// The time point.
    Timepoint,
}

impl Component {
    /// Every component.
    pub const ALL: [Component; 5] =
        [Component::Well, Component::Site, Component::Channel, Component::Z, Component::Timepoint];

    /// The name used in pipeline files.
    pub const fn name(self) -> &'static str {
        match self {
            Component::Well => "well",
            Component::Site => "site",
            Component::Channel => "channel",
            Component::Z => "z_index",
            Component::Timepoint => "timepoint",
        }
    }

    /// Parse a pipeline-file name.
    pub fn from_name(name: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The components of one image plane. Site, channel, z and timepoint are 1-based, as
/// microscopes number them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ImageKey {
    /// Well.
    pub well: WellId,
    /// Time point (first in the ordering so a well's planes sort by time, then site…).
    pub timepoint: u32,
    /// Site (field).
    pub site: u32,
    /// Channel.
    pub channel: u32,
    /// Focal plane.
    pub z: u32,
}

impl ImageKey {
    /// The value of one component (the well as its row*1000+col for uniform handling).
    pub fn get(&self, c: Component) -> u32 {
        match c {
            Component::Well => u32::from(self.well.row) * 1000 + u32::from(self.well.col),
            Component::Site => self.site,
            Component::Channel => self.channel,
            Component::Z => self.z,
            Component::Timepoint => self.timepoint,
        }
    }

    /// The value of one component as pipeline files write it: the well's name (`A01`), the
    /// number of any other component (`3`). Dict keys select groups by this text.
    pub fn value_text(&self, c: Component) -> String {
        match c {
            Component::Well => self.well.to_string(),
            other => self.get(other).to_string(),
        }
    }
}

impl fmt::Display for ImageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} site {} channel {} z {} t {}", self.well, self.site, self.channel, self.z, self.timepoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wells_parse_and_print_in_every_plate_size() {
        for (text, row, col, printed) in [
            ("A01", 0, 1, "A01"),
            ("a1", 0, 1, "A01"),
            ("P24", 15, 24, "P24"),
            ("AF48", 31, 48, "AF48"),
            ("R02C03", 1, 3, "B03"),
            ("r1c12", 0, 12, "A12"),
        ] {
            let w: WellId = text.parse().expect(text);
            assert_eq!((w.row, w.col), (row, col), "{text}");
            assert_eq!(w.to_string(), printed);
        }
        for bad in ["", "01", "A0", "A", "ABC1", "A-1", "R0C1"] {
            assert!(bad.parse::<WellId>().is_err(), "{bad:?} must not parse");
        }
    }

    #[test]
    fn wells_sort_row_major_and_naturally() {
        let mut ws: Vec<WellId> =
            ["B01", "A10", "A02", "AA01", "Z01"].iter().map(|s| s.parse().expect("well")).collect();
        ws.sort();
        let names: Vec<String> = ws.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["A02", "A10", "B01", "Z01", "AA01"]);
    }
}
