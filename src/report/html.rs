//! `results/report.html`: one self-contained page — the template (inline CSS and JavaScript, no
//! network) with the run's data embedded as JSON.

use serde::Serialize;

use super::overview::{ChannelColor, Pictures, Thumbnail};
use super::run_json::RunJson;

/// File name in `results/`.
pub const FILE: &str = "report.html";

/// The page; its script renders everything from the embedded data.
const TEMPLATE: &str = include_str!("report_template.html");

/// Where the data goes: a JSON string literal inside `<script id="hcs-data" type="application/json">`.
const PLACEHOLDER: &str = "\"__HCS_REPORT_DATA__\"";

#[derive(Serialize)]
struct Data<'a> {
    run: &'a RunJson,
    thumbnails: &'a std::collections::BTreeMap<String, Thumbnail>,
    channel_colors: &'a [ChannelColor],
    notes: &'a [String],
}

/// The page for `run` with `pictures`.
pub fn build(run: &RunJson, pictures: &Pictures) -> String {
    let data =
        Data { run, thumbnails: &pictures.thumbnails, channel_colors: &pictures.channels, notes: &pictures.notes };
    // Plain data: serializing it cannot fail. `<` is escaped so no text in the data (a file
    // name, an error message) can close the script element.
    let json = serde_json::to_string(&data).unwrap_or_else(|_| "{}".into()).replace('<', "\\u003c");
    TEMPLATE.replacen(PLACEHOLDER, &json, 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_template_has_one_place_for_the_data() {
        assert_eq!(super::TEMPLATE.matches(super::PLACEHOLDER).count(), 1);
        for fetch in ["src=\"http", "href=\"http", "url(http", "import(", "fetch("] {
            assert!(!super::TEMPLATE.contains(fetch), "no network: {fetch}");
        }
    }
}
