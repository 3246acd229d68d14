//! MetaMorph's XML, which ImageXpress writes into each TIFF's ImageDescription: the pixel size
//! (`spatial-calibration-x` / `-y` in `spatial-calibration-units`), the stage position
//! (`stage-position-x` / `-y`, in µm) and the site's place in the well's site grid (the
//! `<custom-prop id="SiteX" type="int" value="2"/>` / `SiteY` entries ImageXpress adds).

/// What a plane's MetaMorph XML says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetaMorph {
    /// Pixel size in µm, when the image is calibrated in a length unit.
    pub pixel_size_um: Option<f64>,
    /// Stage position `(x, y)` in µm.
    pub stage_um: Option<(f64, f64)>,
    /// The site's `(x, y)` — column and row — in the well's site grid, as the `SiteX` / `SiteY`
    /// custom props give them; `None` unless both are whole numbers.
    pub site_xy: Option<(u32, u32)>,
}

/// Micrometres per `unit` (`None` for `pixel` — not calibrated — or an unknown unit).
fn um_per(unit: &str) -> Option<f64> {
    match unit.trim().to_ascii_lowercase().as_str() {
        "um" | "µm" | "μm" | "micron" | "microns" | "micrometer" | "micrometre" => Some(1.0),
        "nm" | "nanometer" | "nanometre" => Some(1e-3),
        "mm" | "millimeter" | "millimetre" => Some(1e3),
        _ => None,
    }
}

/// Read MetaMorph XML (`None` when `text` is not MetaMorph's `<MetaData>` with `<prop>`s).
pub fn parse(text: &str) -> Option<MetaMorph> {
    let doc = roxmltree::Document::parse(text.trim()).ok()?;
    let entries = |tag: &str| -> Vec<(&str, &str)> {
        doc.descendants()
            .filter(|n| n.has_tag_name(tag))
            .filter_map(|n| Some((n.attribute("id")?, n.attribute("value")?)))
            .collect()
    };
    let props = entries("prop");
    if props.is_empty() {
        return None;
    }
    let custom = entries("custom-prop");
    let get = |id: &str| find(&props, id);
    let number = |id: &str| get(id).and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite());
    // MetaMorph writes the calibration per pixel in the unit it names; `pixel` means none.
    let pixel_size_um = match (number("spatial-calibration-x"), get("spatial-calibration-units").and_then(um_per)) {
        (Some(x), Some(scale)) if x > 0.0 => Some(x * scale),
        _ => None,
    };
    let stage_um = number("stage-position-x").zip(number("stage-position-y"));
    // ImageXpress writes them as custom props; a plain prop of that id is read too.
    let site = |id: &str| find(&custom, id).or_else(|| get(id)).and_then(whole);
    let site_xy = site("SiteX").zip(site("SiteY"));
    Some(MetaMorph { pixel_size_um, stage_um, site_xy })
}

/// The value of the entry `id` (any case) among `entries`.
fn find<'a>(entries: &[(&str, &'a str)], id: &str) -> Option<&'a str> {
    entries.iter().find(|(k, _)| k.eq_ignore_ascii_case(id)).map(|(_, v)| *v)
}

/// A whole number written as `2` (or `2.0`, as a float-typed prop would).
fn whole(value: &str) -> Option<u32> {
    let value = value.trim();
    value.parse::<u32>().ok().or_else(|| {
        let v = value.parse::<f64>().ok()?;
        (v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v)).then_some(v as u32)
    })
}

/// MetaMorph XML for a plane of `pixel_size_um` at stage position `stage_um` — what synthetic
/// ImageXpress plates carry, as the instrument writes it.
pub fn write(pixel_size_um: f64, stage_um: (f64, f64), wavelength: &str) -> String {
    format!(
        "<MetaData>\n<prop id=\"Description\" type=\"string\" value=\"hcs synthetic plane\"/>\n\
<prop id=\"spatial-calibration-x\" type=\"float\" value=\"{pixel_size_um}\"/>\n\
<prop id=\"spatial-calibration-y\" type=\"float\" value=\"{pixel_size_um}\"/>\n\
<prop id=\"spatial-calibration-units\" type=\"string\" value=\"um\"/>\n\
<prop id=\"stage-position-x\" type=\"float\" value=\"{}\"/>\n\
<prop id=\"stage-position-y\" type=\"float\" value=\"{}\"/>\n\
<prop id=\"image-name\" type=\"string\" value=\"{wavelength}\"/>\n</MetaData>",
        stage_um.0, stage_um.1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like the ImageDescription of an ImageXpress Micro export.
    const EXPORT: &str = r#"<MetaData>
<prop id="Description" type="string" value="Exposure: 100 ms"/>
<prop id="MetaDataVersion" type="float" value="1"/>
<prop id="spatial-calibration-state" type="bool" value="on"/>
<prop id="spatial-calibration-x" type="float" value="0.3225"/>
<prop id="spatial-calibration-y" type="float" value="0.3225"/>
<prop id="spatial-calibration-units" type="string" value="um"/>
<prop id="stage-position-x" type="float" value="10543.2"/>
<prop id="stage-position-y" type="float" value="7012.5"/>
<custom-prop id="SiteX" type="int" value="2"/>
<custom-prop id="SiteY" type="int" value="3"/>
</MetaData>"#;

    #[test]
    fn an_export_gives_its_pixel_size_and_stage_position() {
        let m = parse(EXPORT).expect("MetaMorph");
        assert_eq!(m.pixel_size_um, Some(0.3225));
        assert_eq!(m.stage_um, Some((10543.2, 7012.5)));
        assert_eq!(m.site_xy, Some((2, 3)));
    }

    #[test]
    fn site_x_and_y_come_from_custom_props_and_need_both() {
        // Inside `<PlaneInfo>`, as other exports nest them, and float-typed.
        let nested = EXPORT
            .replace("<MetaData>", "<MetaData><PlaneInfo>")
            .replace("</MetaData>", "</PlaneInfo></MetaData>")
            .replace(r#"type="int" value="3""#, r#"type="float" value="3.0""#);
        assert_eq!(parse(&nested).and_then(|m| m.site_xy), Some((2, 3)));
        let only_x = EXPORT.replace(r#"<custom-prop id="SiteY" type="int" value="3"/>"#, "");
        let m = parse(&only_x).expect("still MetaMorph");
        assert_eq!((m.site_xy, m.stage_um), (None, Some((10543.2, 7012.5))));
        for bad in ["-1", "2.5", "two", ""] {
            let text = EXPORT.replace(r#"type="int" value="3""#, &format!(r#"type="int" value="{bad}""#));
            assert_eq!(parse(&text).and_then(|m| m.site_xy), None, "SiteY {bad:?}");
        }
        // A plain `<prop>` of that id is read too.
        let plain = EXPORT.replace("custom-prop", "prop");
        assert_eq!(parse(&plain).and_then(|m| m.site_xy), Some((2, 3)));
    }

    #[test]
    fn uncalibrated_or_foreign_descriptions_give_no_pixel_size() {
        let pixels = EXPORT.replace("value=\"um\"", "value=\"pixel\"");
        assert_eq!(parse(&pixels).and_then(|m| m.pixel_size_um), None);
        let nm = EXPORT.replace("value=\"um\"", "value=\"nm\"").replace("0.3225", "322.5");
        assert!((parse(&nm).and_then(|m| m.pixel_size_um).expect("nm") - 0.3225).abs() < 1e-12);
        assert_eq!(parse("ImageJ=1.54f\nunit=micron"), None);
        assert_eq!(parse("<OME/>"), None);
    }

    #[test]
    fn what_synth_writes_reads_back() {
        let m = parse(&write(0.65, (100.0, 200.5), "DAPI")).expect("parses");
        assert_eq!((m.pixel_size_um, m.stage_um, m.site_xy), (Some(0.65), Some((100.0, 200.5)), None));
    }
}
