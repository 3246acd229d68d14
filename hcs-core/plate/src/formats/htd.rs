//! ImageXpress `.HTD` plate files: `"Key", value` lines in whatever encoding the acquisition PC
//! used (UTF-8, UTF-16 with BOM, or Windows-1252 / Latin-1).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{FormatError, sorted_entries};

/// The first `.HTD` file (any case) in the plate root, preferring one with "plate" in its name.
pub fn find_htd(root: &Path) -> Result<Option<PathBuf>, FormatError> {
    Ok(htd_files(root)?.into_iter().next())
}

/// Every `.HTD` file (any case) in the plate root, the one [`find_htd`] reads first: those with
/// "plate" in their name, then by name.
pub fn htd_files(root: &Path) -> Result<Vec<PathBuf>, FormatError> {
    let mut found: Vec<PathBuf> = sorted_entries(root)?
        .into_iter()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("htd")))
        .collect();
    found.sort_by_key(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().to_lowercase().contains("plate")));
    Ok(found)
}

/// Decode HTD bytes tolerantly.
pub fn decode_text(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        let units: Vec<u16> = rest.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        return String::from_utf16_lossy(&units);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        let units: Vec<u16> = rest.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        return String::from_utf16_lossy(&units);
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        // Windows-1252 and Latin-1 agree on every byte that matters here; map bytes to chars.
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// The key/value entries of an HTD file. Keys are case-sensitive as written by MetaXpress.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix('"') else {
            continue;
        };
        let Some((key, value)) = rest.split_once('"') else {
            continue;
        };
        let value = value.trim_start().strip_prefix(',').unwrap_or(value).trim();
        let value = value.trim_matches('"').trim();
        map.insert(key.to_owned(), value.to_owned());
    }
    map
}

/// Read and parse an HTD file; a file with no entries at all is an error.
pub fn read(path: &Path) -> Result<BTreeMap<String, String>, FormatError> {
    let meta = std::fs::metadata(path).map_err(|e| FormatError::io(path, e))?;
    if meta.len() > 16 * 1024 * 1024 {
        return Err(FormatError::BadMetadata {
            path: path.to_path_buf(),
            message: "HTD file larger than 16 MiB".into(),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| FormatError::io(path, e))?;
    let map = parse(&decode_text(&bytes));
    if map.is_empty() {
        return Err(FormatError::BadMetadata {
            path: path.to_path_buf(),
            message: "unreadable HTD: no `\"Key\", value` entries found".into(),
        });
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_metaxpress_lines_in_any_encoding() {
        let text = "\"HTSInfoFile\", Version 1.0\r\n\"XSites\", 3\r\n\"YSites\", 2\r\n\"WaveName1\", \"DAPI\"\r\n\"WaveName2\", \"FITC µ\"\r\n";
        let utf8 = parse(&decode_text(text.as_bytes()));
        assert_eq!(utf8.get("XSites").map(String::as_str), Some("3"));
        assert_eq!(utf8.get("WaveName1").map(String::as_str), Some("DAPI"));

        let latin1: Vec<u8> = text.chars().map(|c| c as u32 as u8).collect();
        assert!(std::str::from_utf8(&latin1).is_err(), "µ makes this invalid UTF-8");
        assert_eq!(parse(&decode_text(&latin1)).get("WaveName2").map(String::as_str), Some("FITC µ"));

        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(parse(&decode_text(&utf16)), utf8);
    }
}
