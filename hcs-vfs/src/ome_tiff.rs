//! OME-XML for single-plane OME-TIFF files: what a TIFF output plane is (its well, site,
//! channel name, z and timepoint), its physical pixel size, and where it was taken — so that
//! tifffile, Fiji / Bio-Formats or QuPath read the calibration back instead of assuming 1 px.

use crate::plane::Dtype;

/// What one output plane is.
#[derive(Clone, Debug, PartialEq)]
pub struct OmePlane {
    /// Image name (the file's stem, say).
    pub name: String,
    /// `(height, width)`.
    pub shape: (usize, usize),
    /// Sample type.
    pub dtype: Dtype,
    /// Pixel size in µm, when known.
    pub pixel_size_um: Option<f64>,
    /// Where the plane's first pixel lies on the input plate's pixel grid (`(y, x)`, as the
    /// OME-Zarr translation says it), when known: written as the plane's `PositionY`/`PositionX`.
    pub origin: Option<Origin>,
    /// Channel name.
    pub channel: String,
    /// Where the plane sits in the plate: well name, site, channel, z and timepoint values
    /// (1-based, as the input plate numbers them), kept as a map annotation.
    pub well: String,
    /// Site value.
    pub site: u32,
    /// Channel value.
    pub channel_index: u32,
    /// Z value.
    pub z: u32,
    /// Timepoint value.
    pub timepoint: u32,
}

/// A plane's origin and its unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Origin {
    /// In µm (the plate gives its pixel size).
    Micrometres(f64, f64),
    /// In the plane's own pixels (the plate gives no pixel size).
    Pixels(f64, f64),
}

impl Origin {
    /// `(y, x)`, in its unit.
    pub fn yx(self) -> (f64, f64) {
        match self {
            Origin::Micrometres(y, x) | Origin::Pixels(y, x) => (y, x),
        }
    }
}

/// XML-escape text for an attribute value or element text; characters outside ASCII become
/// numeric references (a TIFF ImageDescription is 7-bit ASCII).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c if !c.is_ascii() => out.push_str(&format!("&#{};", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The OME-XML (schema 2016-06) of a one-plane OME-TIFF holding `plane`.
pub fn ome_xml(plane: &OmePlane) -> String {
    let (h, w) = plane.shape;
    let kind = match plane.dtype {
        Dtype::U8 => "uint8",
        Dtype::U16 => "uint16",
        Dtype::F32 => "float",
    };
    let size = plane
        .pixel_size_um
        .filter(|p| p.is_finite() && *p > 0.0)
        .map(|p| {
            format!(
                " PhysicalSizeX=\"{p}\" PhysicalSizeXUnit=\"&#181;m\" PhysicalSizeY=\"{p}\" PhysicalSizeYUnit=\"&#181;m\""
            )
        })
        .unwrap_or_default();
    // OME's UnitsLength has both µm and "pixel"; an unknown or non-finite origin is left out.
    let position = match plane.origin {
        Some(Origin::Micrometres(y, x)) if y.is_finite() && x.is_finite() => {
            format!(" PositionX=\"{x}\" PositionXUnit=\"&#181;m\" PositionY=\"{y}\" PositionYUnit=\"&#181;m\"")
        }
        Some(Origin::Pixels(y, x)) if y.is_finite() && x.is_finite() => {
            format!(" PositionX=\"{x}\" PositionXUnit=\"pixel\" PositionY=\"{y}\" PositionYUnit=\"pixel\"")
        }
        _ => String::new(),
    };
    let pairs = [
        ("well", plane.well.clone()),
        ("site", plane.site.to_string()),
        ("channel", plane.channel_index.to_string()),
        ("z", plane.z.to_string()),
        ("timepoint", plane.timepoint.to_string()),
    ];
    let values: String = pairs.iter().map(|(k, v)| format!("<M K=\"{k}\">{}</M>", escape(v))).collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
xsi:schemaLocation=\"http://www.openmicroscopy.org/Schemas/OME/2016-06 http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd\" \
Creator=\"hcs {version}\">\
<Image ID=\"Image:0\" Name=\"{name}\">\
<Pixels ID=\"Pixels:0\" DimensionOrder=\"XYZCT\" Type=\"{kind}\" SizeX=\"{w}\" SizeY=\"{h}\" SizeZ=\"1\" SizeC=\"1\" SizeT=\"1\"{size} BigEndian=\"false\">\
<Channel ID=\"Channel:0:0\" Name=\"{channel}\" SamplesPerPixel=\"1\"/>\
<TiffData IFD=\"0\" PlaneCount=\"1\"/>\
<Plane TheZ=\"0\" TheT=\"0\" TheC=\"0\"{position}/>\
</Pixels>\
<AnnotationRef ID=\"Annotation:0\"/>\
</Image>\
<StructuredAnnotations><MapAnnotation ID=\"Annotation:0\" Namespace=\"hcs/plane\"><Value>{values}</Value></MapAnnotation></StructuredAnnotations>\
</OME>",
        version = env!("CARGO_PKG_VERSION"),
        name = escape(&plane.name),
        channel = escape(&plane.channel),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_xml_names_size_calibration_channel_and_place() {
        let plane = OmePlane {
            name: "A01 <s1>".into(),
            shape: (20, 30),
            dtype: Dtype::U16,
            pixel_size_um: Some(0.65),
            origin: Some(Origin::Micrometres(2.6, 6.5)),
            channel: "DAPI & µ".into(),
            well: "A01".into(),
            site: 1,
            channel_index: 2,
            z: 3,
            timepoint: 1,
        };
        let xml = ome_xml(&plane);
        assert!(xml.is_ascii(), "a TIFF description is ASCII");
        for part in [
            "SizeX=\"30\" SizeY=\"20\"",
            "Type=\"uint16\"",
            "PhysicalSizeX=\"0.65\" PhysicalSizeXUnit=\"&#181;m\"",
            "Name=\"DAPI &amp; &#181;\"",
            "Name=\"A01 &lt;s1&gt;\"",
            "<M K=\"z\">3</M>",
            "PositionX=\"6.5\" PositionXUnit=\"&#181;m\" PositionY=\"2.6\" PositionYUnit=\"&#181;m\"",
        ] {
            assert!(xml.contains(part), "{part} missing from {xml}");
        }
        let unknown = ome_xml(&OmePlane {
            pixel_size_um: None,
            origin: None,
            name: String::new(),
            shape: (1, 1),
            dtype: Dtype::F32,
            channel: String::new(),
            well: String::new(),
            site: 1,
            channel_index: 1,
            z: 1,
            timepoint: 1,
        });
        assert!(!unknown.contains("PhysicalSize"), "no made-up calibration: {unknown}");
        assert!(!unknown.contains("Position"), "no made-up position: {unknown}");
        let in_pixels = |origin| ome_xml(&OmePlane { origin: Some(origin), pixel_size_um: None, ..plane.clone() });
        let xml = in_pixels(Origin::Pixels(4.0, 10.5));
        assert!(
            xml.contains("PositionX=\"10.5\" PositionXUnit=\"pixel\" PositionY=\"4\" PositionYUnit=\"pixel\""),
            "{xml}"
        );
        assert!(!in_pixels(Origin::Pixels(f64::NAN, 1.0)).contains("Position"), "a NaN origin is left out");
    }
}
