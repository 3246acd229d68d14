//! Writing a synthetic plate in the ImageXpress layout.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::SynthConfig;
use hcs_plate::WellId;

/// Plate name used for the `.HTD` file.
pub const PLATE_NAME: &str = "synthetic_plate";

/// `TimePoint_{t}/[ZStep_{z}/]{well}_s{site}_w{c}.tif`.
pub fn image_path(config: &SynthConfig, out: &Path, well: WellId, site: u32, t: u32, z: u32, c: u32) -> PathBuf {
    let mut p = out.join(format!("TimePoint_{t}"));
    if config.z_planes > 1 {
        p.push(format!("ZStep_{z}"));
    }
    p.push(format!("{well}_s{site}_w{c}.tif"));
    p
}

/// Write `<out>/synthetic_plate.HTD`.
pub fn write_htd(config: &SynthConfig, out: &Path) -> Result<(), hcs_vfs::VfsError> {
    let mut htd = String::new();
    let mut line = |k: &str, v: &str| {
        let _ = write!(htd, "\"{k}\", {v}\r\n");
    };
    line("HTSInfoFile", "Version 1.0");
    line("Description", &format!("\"hcs synthetic plate, seed {}\"", config.seed));
    line("TimePoints", &config.timepoints.to_string());
    line("ZSeries", if config.z_planes > 1 { "TRUE" } else { "FALSE" });
    line("ZSteps", &config.z_planes.to_string());
    line("XSites", &config.grid.1.to_string());
    line("YSites", &config.grid.0.to_string());
    line("NWavelengths", &config.channels.to_string());
    for c in 1..=config.channels {
        let name = match c {
            1 => "DAPI".to_owned(),
            2 => "FITC".to_owned(),
            n => format!("W{n}"),
        };
        line(&format!("WaveName{c}"), &format!("\"{name}\""));
    }
    line("EndFile", "");
    hcs_vfs::atomic::write_atomic(&out.join(format!("{PLATE_NAME}.HTD")), htd.as_bytes())
}
