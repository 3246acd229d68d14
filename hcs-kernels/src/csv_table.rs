//! CSV files of special outputs, written through the `csv` crate: fields holding commas, quotes
//! or line breaks (free-text reasons, method names) are quoted, so every reader parses them back.

use hcs_core::error::MaterializeError;
use serde::Serialize;

/// The CSV text of `rows` (one record per row, a header from the first row's field names).
pub fn csv_bytes<R: Serialize>(
    header: &[&str],
    rows: impl IntoIterator<Item = R>,
) -> Result<Vec<u8>, MaterializeError> {
    let encode = |e: csv::Error| MaterializeError::Encode(format!("CSV: {e}"));
    let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    writer.write_record(header).map_err(encode)?;
    for row in rows {
        writer.serialize(row).map_err(encode)?;
    }
    writer.into_inner().map_err(|e| MaterializeError::Encode(format!("CSV: {}", e.error())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_with_commas_and_quotes_is_quoted_and_parses_back() {
        let why = "offset 25 px from nominal, > max_shift 15 (\"far\")";
        let bytes = csv_bytes(&["site", "why"], [(1, why), (2, "")]).expect("encodes");
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
        let rows: Vec<(u32, String)> = reader.deserialize().collect::<Result<_, _>>().expect("parses");
        assert_eq!(rows, [(1, why.to_string()), (2, String::new())]);
        assert_eq!(reader.headers().expect("header"), vec!["site", "why"]);
    }
}
