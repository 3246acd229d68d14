//! A well's quality figures for the report: per site and channel from the raw planes' measures
//! (the executor's [`crate::exec::qc`]), stitching from the positions and edge CSVs a tile
//! positions step wrote, cells from a cell-count JSON — and the flags that need a look.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exec::qc::PlaneQc;

use super::run_json::WellJson;

/// A site of a channel (best focal plane; worst saturation; median background over z and time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteQc {
    /// Site.
    pub site: u32,
    /// Channel.
    pub channel: u32,
    /// Focus score (variance of the Laplacian) of the sharpest plane.
    pub focus: f64,
    /// Largest fraction of saturated pixels among the planes.
    pub saturated_fraction: f64,
    /// Median background level (10th percentile of each plane).
    pub background: f64,
}

/// How a well's tiles were stitched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StitchQc {
    /// Neighbour pairs measured.
    pub edges: usize,
    /// Pairs used to place tiles.
    pub accepted: usize,
    /// Pairs rejected (offset too far from nominal, or correlation too low).
    pub rejected: usize,
    /// Mean distance (px) between an accepted pair's measured offset and the placed tiles'.
    pub residual_mean_px: Option<f64>,
    /// Largest such distance (px).
    pub residual_max_px: Option<f64>,
    /// Tiles outside the largest group joined by accepted edges: placed from the nominal
    /// grid, not from the images.
    pub model_placed: usize,
    /// Nominal overlap `(x, y)` of neighbouring tiles (fractions), from `<positions>_overlap.csv`.
    #[serde(default)]
    pub overlap: Option<(f64, f64)>,
    /// Where the overlap came from: the parameter, an estimate from the tiles, or an assumption.
    #[serde(default)]
    pub overlap_source: Option<String>,
    /// The step (1-based) that computed the positions: its setting and those of the steps that
    /// read them decide `on_stitch_fallback`.
    #[serde(default)]
    pub step: Option<usize>,
    /// Where positions are kept per group (a time-lapse: one mosaic per timepoint), the groups
    /// whose tiles fell back to the nominal grid (`t2`), in group order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fell_back_in: Vec<String>,
}

/// One group's cell count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCells {
    /// The group's label (`t2`, `c1_z3`).
    pub group: String,
    /// Cells counted.
    pub cells: u64,
}

/// A well's quality figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WellQc {
    /// Per site and channel.
    pub sites: Vec<SiteQc>,
    /// The smallest site focus score.
    pub focus_min: Option<f64>,
    /// The largest saturated fraction.
    pub saturated_max: Option<f64>,
    /// The median site background.
    pub background_median: Option<f64>,
    /// Stitching, if a step computed tile positions.
    pub stitching: Option<StitchQc>,
    /// Cells counted, if a step counted cells; where it counted per group (`merge_outputs`: per
    /// timepoint or channel), the first group's (each group's is in `cells_by_group`).
    pub cells: Option<u64>,
    /// Where cells were counted per group: each group's label (`t2`, `c1`) and count, in
    /// group order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells_by_group: Vec<GroupCells>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// Per site and channel, from the raw planes' measures.
pub fn sites(planes: &[PlaneQc]) -> Vec<SiteQc> {
    let mut by: BTreeMap<(u32, u32), Vec<&PlaneQc>> = BTreeMap::new();
    for p in planes {
        by.entry((p.key.site, p.key.channel)).or_default().push(p);
    }
    by.into_iter()
        .map(|((site, channel), ps)| SiteQc {
            site,
            channel,
            focus: ps.iter().map(|p| p.focus).fold(0.0, f64::max),
            saturated_fraction: ps.iter().map(|p| p.saturated_fraction).fold(0.0, f64::max),
            background: median(ps.iter().map(|p| p.background).collect()).unwrap_or(0.0),
        })
        .collect()
}

/// Where one materialized special output of a well wrote its files, as the well's plan names
/// it ([`crate::plan::compiler::WellPlan::materialized_outputs`]) and its completion record
/// lists them: the step, the results folder, the files' stem — `<well>_<key>` for one value per
/// well, `<well>_<group>_<key>` for one per group (`merge_outputs`), each followed by the
/// materializer's own suffixes — and the files of that folder the well's run wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultFiles {
    /// 1-based step that wrote them.
    pub step: usize,
    /// The results folder.
    pub dir: PathBuf,
    /// The stem of a per-well output; `None` for a per-group one.
    pub stem: Option<String>,
    /// The well (a per-group output's files start with `<well>_`).
    pub well: String,
    /// The special output's key (a per-group output's stems end with `_<key>`).
    pub key: String,
    /// The files in `dir` that the well's completion record lists (absolute paths).
    pub written: Vec<PathBuf>,
}

impl ResultFiles {
    /// Every materialized special output of `plan`, in step order, with the files of its folder
    /// among `written` (the well's record, absolute paths). Where two steps write the same
    /// files (the same key and folder), the later one wrote what is there: only it is listed.
    pub fn of(plan: &crate::plan::compiler::WellPlan, written: &[PathBuf]) -> Vec<ResultFiles> {
        let outputs: Vec<ResultFiles> = plan
            .materialized_outputs()
            .map(|(step, key, out)| ResultFiles {
                step,
                dir: out.results_dir.clone(),
                stem: (!out.per_group).then(|| out.stem.clone()),
                well: plan.well.to_string(),
                key: key.to_string(),
                written: written.iter().filter(|p| p.parent() == Some(out.results_dir.as_path())).cloned().collect(),
            })
            .collect();
        latest_writers(outputs)
    }

    /// The written files with `suffix` after the stem: the one file of a per-well output, or a
    /// per-group output's files (`<well>_<group>_<key><suffix>`, the group a label such as
    /// `c2_z1` or `all`) in name order.
    fn with_suffix(&self, suffix: &str) -> Vec<PathBuf> {
        if let Some(stem) = &self.stem {
            let path = self.dir.join(format!("{stem}{suffix}"));
            return if self.written.contains(&path) { vec![path] } else { Vec::new() };
        }
        let (prefix, end) = (format!("{}_", self.well), format!("_{}{suffix}", self.key));
        let of_a_group = |name: &str| {
            name.strip_prefix(&prefix).and_then(|n| n.strip_suffix(&end)).is_some_and(crate::exec::groups::is_label)
        };
        let mut found: Vec<PathBuf> = self
            .written
            .iter()
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(of_a_group))
            .cloned()
            .collect();
        // In group order: `t2` before `t10`.
        found.sort_by_key(|p| natural_key(&p.to_string_lossy()));
        found
    }

    /// The group label of a per-group output's file (`A01_t2_cell_counts.json` → `t2`).
    fn group_of(&self, path: &Path, suffix: &str) -> Option<String> {
        let name = path.file_name()?.to_str()?;
        let label = name.strip_prefix(&format!("{}_", self.well))?.strip_suffix(&format!("_{}{suffix}", self.key))?;
        Some(label.to_string())
    }
}

/// `text` cut into runs of digits (compared as numbers) and of other characters, so that
/// `A01_t2_…` sorts before `A01_t10_…`.
fn natural_key(text: &str) -> Vec<Result<u64, String>> {
    let mut key = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        let digits = c.is_ascii_digit();
        let mut run = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit() == digits) {
            run.push(d);
            chars.next();
        }
        key.push(if digits { run.parse().map_err(|_| run) } else { Err(run) });
    }
    key
}

/// `outputs` (in step order) less those whose files a later step writes again (the same folder,
/// stem and key): the later step wrote what is there.
fn latest_writers(outputs: Vec<ResultFiles>) -> Vec<ResultFiles> {
    let same = |a: &ResultFiles, b: &ResultFiles| (&a.dir, &a.stem, &a.key) == (&b.dir, &b.stem, &b.key);
    let overwritten = |i: usize| outputs[i + 1..].iter().any(|later| same(later, &outputs[i]));
    (0..outputs.len()).filter(|&i| !overwritten(i)).map(|i| outputs[i].clone()).collect()
}

/// Stitching figures from `<positions>.csv` (`site,row,col,x,y`) and `<positions>_edges.csv`
/// (`site_a,site_b,dx,dy,ncc,accepted,…`).
pub fn stitching(edges_csv: &Path) -> Option<StitchQc> {
    let name = edges_csv.file_name()?.to_str()?;
    let positions_csv = edges_csv.with_file_name(format!("{}.csv", name.strip_suffix("_edges.csv")?));
    let mut positions: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
    for row in csv::Reader::from_path(&positions_csv).ok()?.deserialize::<(usize, u32, u32, f64, f64)>() {
        let (site, _, _, x, y) = row.ok()?;
        positions.insert(site, (x, y));
    }
    let mut edges = Vec::new();
    for row in csv::Reader::from_path(edges_csv).ok()?.deserialize::<(usize, usize, f64, f64, f64, bool, String)>() {
        let (a, b, dx, dy, _, accepted, _) = row.ok()?;
        edges.push((a, b, dx, dy, accepted));
    }
    let accepted: Vec<_> = edges.iter().filter(|e| e.4).collect();
    let residuals: Vec<f64> = accepted
        .iter()
        .filter_map(|&&(a, b, dx, dy, _)| {
            let (pa, pb) = (positions.get(&a)?, positions.get(&b)?);
            Some(((pb.0 - pa.0) - dx).hypot((pb.1 - pa.1) - dy))
        })
        .collect();
    // Groups of tiles joined by accepted edges (union–find over the sites).
    let sites: Vec<usize> = positions.keys().copied().collect();
    let mut parent: BTreeMap<usize, usize> = sites.iter().map(|&s| (s, s)).collect();
    fn root(parent: &mut BTreeMap<usize, usize>, s: usize) -> usize {
        let mut r = s;
        while let Some(&p) = parent.get(&r) {
            if p == r {
                break;
            }
            r = p;
        }
        parent.insert(s, r);
        r
    }
    for &&(a, b, ..) in &accepted {
        let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
        parent.insert(ra, rb);
    }
    let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
    for &s in &sites {
        *sizes.entry(root(&mut parent, s)).or_default() += 1;
    }
    let largest = sizes.values().copied().max().unwrap_or(0);
    let (overlap, overlap_source) =
        nominal_overlap(&edges_csv.with_file_name(format!("{}_overlap.csv", name.strip_suffix("_edges.csv")?)));
    Some(StitchQc {
        edges: edges.len(),
        accepted: accepted.len(),
        rejected: edges.len() - accepted.len(),
        residual_mean_px: (!residuals.is_empty()).then(|| residuals.iter().sum::<f64>() / residuals.len() as f64),
        residual_max_px: residuals.iter().copied().reduce(f64::max),
        model_placed: sites.len() - largest,
        overlap,
        overlap_source,
        step: None,
        fell_back_in: Vec::new(),
    })
}

impl StitchQc {
    /// `tiles` (placed from the nominal grid), with the groups they were in where positions
    /// are kept per group: `3 tiles (in t2, t3)`.
    pub fn fallback_text(&self) -> String {
        let tiles = if self.model_placed == 1 { "1 tile".to_string() } else { format!("{} tiles", self.model_placed) };
        if self.fell_back_in.is_empty() { tiles } else { format!("{tiles} (in {})", self.fell_back_in.join(", ")) }
    }

    /// The figures of two groups' mosaics of one well taken together: counts added, the
    /// residuals' mean weighted by the accepted pairs and their maximum, the first group's
    /// overlap.
    fn add(self, other: StitchQc) -> StitchQc {
        let weighted = |q: &StitchQc| q.residual_mean_px.map(|m| (m * q.accepted as f64, q.accepted as f64));
        let residual_mean_px = match (weighted(&self), weighted(&other)) {
            (Some((a, n)), Some((b, m))) if n + m > 0.0 => Some((a + b) / (n + m)),
            _ => self.residual_mean_px.or(other.residual_mean_px),
        };
        StitchQc {
            edges: self.edges + other.edges,
            accepted: self.accepted + other.accepted,
            rejected: self.rejected + other.rejected,
            residual_mean_px,
            residual_max_px: match (self.residual_max_px, other.residual_max_px) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
            model_placed: self.model_placed + other.model_placed,
            overlap: self.overlap.or(other.overlap),
            overlap_source: self.overlap_source.or(other.overlap_source),
            step: self.step.or(other.step),
            fell_back_in: self.fell_back_in.into_iter().chain(other.fell_back_in).collect(),
        }
    }
}

/// The nominal overlap `(x, y)` and its source from `<positions>_overlap.csv`
/// (`axis,overlap,source`); `None`s when the file is absent (older outputs) or unreadable.
fn nominal_overlap(path: &Path) -> (Option<(f64, f64)>, Option<String>) {
    let Ok(mut reader) = csv::Reader::from_path(path) else { return (None, None) };
    let rows: Vec<(String, f64, String)> = reader.deserialize().filter_map(Result::ok).collect();
    let axis = |a: &str| rows.iter().find(|r| r.0 == a).map(|r| r.1);
    (axis("x").zip(axis("y")), rows.first().map(|r| r.2.clone()))
}

/// `total_cells` of a cell-count JSON.
pub(crate) fn cells(path: &Path) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v.get("total_cells")?.as_u64()
}

/// A well's figures from its raw planes' measures and the files its plan's special outputs
/// wrote (`outputs`, [`ResultFiles::of`]): stitching from the first output with edge tables
/// (`<stem>_edges.csv`, one per group where positions are kept per group), cells from the first JSON (`<stem>.json`) that counts them. Only files
/// at the paths the plan names and the well's record lists are read, so files of another run or
/// pipeline in the same results folder are not taken for this one's.
pub fn well_qc(outputs: &[ResultFiles], planes: &[PlaneQc]) -> WellQc {
    let sites = sites(planes);
    // A step that keeps positions per group (a time-lapse: one mosaic per timepoint) wrote one
    // edge table per group: the well's figures add them all up, so a fallback in any group shows.
    let stitching = outputs.iter().find_map(|o| {
        let tables = o.with_suffix("_edges.csv");
        // A per-group table is `<well>_<group>_<key>_edges.csv`: its group, where it fell back.
        let (prefix, end) = (format!("{}_", o.well), format!("_{}_edges.csv", o.key));
        let group_of = |p: &PathBuf| {
            let name = p.file_name()?.to_str()?;
            Some(name.strip_prefix(&prefix)?.strip_suffix(&end)?.to_string())
        };
        let mut groups = tables.iter().filter_map(|p| {
            let mut qc = stitching(p)?;
            if o.stem.is_none() && qc.model_placed > 0 {
                qc.fell_back_in = group_of(p).into_iter().collect();
            }
            Some(qc)
        });
        let first = groups.next()?;
        Some(StitchQc { step: Some(o.step), ..groups.fold(first, StitchQc::add) })
    });
    // The first output that counts cells: one file, or one per group (each group's kept).
    let counted = outputs.iter().find_map(|o| {
        let counts: Vec<(PathBuf, u64)> =
            o.with_suffix(".json").into_iter().filter_map(|p| cells(&p).map(|n| (p, n))).collect();
        (!counts.is_empty()).then_some((o, counts))
    });
    let cells_by_group: Vec<GroupCells> = counted
        .iter()
        .filter(|(o, _)| o.stem.is_none())
        .flat_map(|(o, counts)| {
            counts.iter().filter_map(|(p, n)| Some(GroupCells { group: o.group_of(p, ".json")?, cells: *n }))
        })
        .collect();
    let cells = counted.and_then(|(_, counts)| counts.first().map(|c| c.1));
    WellQc {
        focus_min: sites.iter().map(|s| s.focus).reduce(f64::min),
        saturated_max: sites.iter().map(|s| s.saturated_fraction).reduce(f64::max),
        background_median: median(sites.iter().map(|s| s.background).collect()),
        stitching,
        cells,
        cells_by_group,
        sites,
    }
}

/// Saturated pixels above this fraction of a site are flagged.
pub const SATURATION_FLAG: f64 = 0.001;
/// A site whose focus score is below this fraction of its channel's median over the plate is
/// flagged as out of focus.
pub const FOCUS_FLAG: f64 = 0.25;

/// Flag what needs a look, comparing each site's focus with its channel's plate median.
pub fn flag(wells: &mut [WellJson]) {
    let mut focus_by_channel: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for s in wells.iter().flat_map(|w| &w.qc.sites) {
        focus_by_channel.entry(s.channel).or_default().push(s.focus);
    }
    let medians: BTreeMap<u32, f64> =
        focus_by_channel.into_iter().filter_map(|(c, v)| median(v).map(|m| (c, m))).collect();
    for w in wells.iter_mut() {
        let mut flags = Vec::new();
        if let Some(error) = &w.error {
            flags.push(format!("failed: {error}"));
        } else if matches!(w.status.as_str(), "not_run" | "interrupted" | "missing") {
            flags.push(format!("not complete: {}", w.status.replace('_', " ")));
        }
        if let Some(s) = &w.qc.stitching {
            // A single tile has no neighbour: no overlap to agree on.
            if let Some(source) = s.overlap_source.as_deref().filter(|o| o.starts_with("assumed") && s.edges > 0) {
                flags.push(format!("stitching overlap {source}"));
            }
            if s.rejected > 0 {
                flags.push(format!("stitching: {} of {} edges rejected", s.rejected, s.edges));
            }
            if s.model_placed > 0 {
                flags.push(format!(
                    "stitching fell back: {} placed from the nominal grid, not the images",
                    s.fallback_text()
                ));
            }
        }
        for s in &w.qc.sites {
            if s.saturated_fraction > SATURATION_FLAG {
                flags.push(format!(
                    "saturated: {:.2} % of site {} channel {}",
                    100.0 * s.saturated_fraction,
                    s.site,
                    s.channel
                ));
            }
            if let Some(&m) = medians.get(&s.channel)
                && m > 0.0
                && s.focus < FOCUS_FLAG * m
            {
                flags.push(format!(
                    "out of focus: site {} channel {} ({:.2} × the plate's median focus)",
                    s.site,
                    s.channel,
                    s.focus / m
                ));
            }
        }
        let empty: Vec<&str> = w.qc.cells_by_group.iter().filter(|g| g.cells == 0).map(|g| g.group.as_str()).collect();
        if !empty.is_empty() {
            flags.push(format!("empty: no cells counted in {}", empty.join(", ")));
        } else if w.qc.cells == Some(0) {
            flags.push("empty: no cells counted".to_string());
        }
        w.flags = flags;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Well A01, done, with `qc`.
    fn done_well(qc: WellQc) -> WellJson {
        WellJson {
            well: "A01".into(),
            row: 0,
            column: 1,
            status: "done".into(),
            error: None,
            seconds: 1.0,
            start_s: None,
            worker: None,
            peak_rss_mib: None,
            peak_heap_mib: None,
            estimated_peak_mib: None,
            write_behind_mib: None,
            peak_write_behind_mib: None,
            steps: Vec::new(),
            qc,
            flags: Vec::new(),
            outputs: Vec::new(),
        }
    }

    #[test]
    fn stitching_figures_come_from_the_positions_and_edges() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(
            dir.path().join("A01_positions.csv"),
            "site,row,col,x,y\n1,0,0,0,0\n2,0,1,90,0\n3,1,0,0,92\n4,1,1,200,200\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("A01_positions_edges.csv"),
            "site_a,site_b,dx,dy,ncc,accepted,rejected_because\n1,2,90.5,0,0.9,true,\n1,3,0,91,0.8,true,\n2,4,0,90,0.1,false,low\n3,4,90,0,0.1,false,low\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("A01_positions_overlap.csv"),
            "axis,overlap,source\nx,0.1012,estimated from the tiles\ny,0.0950,estimated from the tiles\n",
        )
        .expect("write");
        let listed = |names: &[&str]| names.iter().map(|n| dir.path().join(n)).collect::<Vec<_>>();
        let all = listed(&["A01_positions.csv", "A01_positions_edges.csv", "A01_positions_overlap.csv"]);
        let positions = |step: usize, stem: Option<&str>, written: &[PathBuf]| ResultFiles {
            step,
            dir: dir.path().to_path_buf(),
            stem: stem.map(str::to_string),
            well: "A01".into(),
            key: "positions".into(),
            written: written.to_vec(),
        };
        let qc = well_qc(&[positions(4, Some("A01_positions"), &all)], &[]);
        let s = qc.stitching.expect("stitching");
        assert_eq!((s.edges, s.accepted, s.rejected, s.model_placed, s.step), (4, 2, 2, 1, Some(4)));
        assert_eq!(s.overlap, Some((0.1012, 0.095)));
        assert_eq!(s.overlap_source.as_deref(), Some("estimated from the tiles"));
        assert!((s.residual_mean_px.expect("mean") - 0.75).abs() < 1e-9);
        assert!((s.residual_max_px.expect("max") - 1.0).abs() < 1e-9);
        assert_eq!(qc.cells, None);
        // Only the files the plan names and the well's record lists: a stem the plan does not
        // name finds none, nor does a table the well's run did not write (another run's).
        assert_eq!(well_qc(&[positions(2, Some("A01_tiles"), &all)], &[]).stitching, None);
        assert_eq!(well_qc(&[positions(4, Some("A01_positions"), &all[..1])], &[]).stitching, None);
        // A per-group output's files: `<well>_<group>_<key>`, the group a label the executor
        // gives; not another well's, not another key's that ends in this one.
        let names = ["A01_c2_positions_edges.csv", "A01_all_positions_edges.csv", "B01_c2_positions_edges.csv"];
        let more = ["A01_tile_positions_edges.csv", "A01_c2_z_positions_edges.csv", "A01_positions_edges.csv"];
        let per_group = positions(3, None, &listed(&[&names[..], &more[..]].concat()));
        assert_eq!(
            per_group.with_suffix("_edges.csv"),
            listed(&["A01_all_positions_edges.csv", "A01_c2_positions_edges.csv"])
        );
    }

    #[test]
    fn per_group_positions_add_up_so_a_fallback_in_a_later_group_shows() {
        let dir = tempfile::tempdir().expect("tmp");
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
        // Timepoint 1: both edges accepted, every tile placed from the images.
        write("A01_t1_positions.csv", "site,row,col,x,y\n1,0,0,0,0\n2,0,1,90,0\n3,1,0,0,92\n");
        write(
            "A01_t1_positions_edges.csv",
            "site_a,site_b,dx,dy,ncc,accepted,rejected_because\n1,2,90,0,0.9,true,\n1,3,0,92,0.8,true,\n",
        );
        // Timepoint 2: one edge rejected, tile 3 from the nominal grid; residual 2 px.
        write("A01_t2_positions.csv", "site,row,col,x,y\n1,0,0,0,0\n2,0,1,92,0\n3,1,0,0,92\n");
        write(
            "A01_t2_positions_edges.csv",
            "site_a,site_b,dx,dy,ncc,accepted,rejected_because\n1,2,90,0,0.9,true,\n1,3,0,92,0.1,false,low\n",
        );
        let written: Vec<PathBuf> =
            std::fs::read_dir(dir.path()).expect("dir").map(|e| e.expect("entry").path()).collect();
        let per_group = ResultFiles {
            step: 4,
            dir: dir.path().to_path_buf(),
            stem: None,
            well: "A01".into(),
            key: "positions".into(),
            written,
        };
        let qc = well_qc(&[per_group], &[]);
        let s = qc.stitching.clone().expect("stitching");
        assert_eq!((s.edges, s.accepted, s.rejected, s.model_placed, s.step), (4, 3, 1, 1, Some(4)));
        assert!((s.residual_mean_px.expect("mean") - 2.0 / 3.0).abs() < 1e-9, "{:?}", s.residual_mean_px);
        assert!((s.residual_max_px.expect("max") - 2.0).abs() < 1e-9);
        // The flag names the timepoint that fell back, not just the well.
        assert_eq!(s.fell_back_in, ["t2"]);
        let mut wells = vec![done_well(qc)];
        flag(&mut wells);
        assert!(
            wells[0].flags.contains(
                &"stitching fell back: 1 tile (in t2) placed from the nominal grid, not the images".to_string()
            ),
            "{:?}",
            wells[0].flags
        );
    }

    #[test]
    fn cells_counted_per_group_are_each_kept_and_an_empty_group_is_flagged() {
        let dir = tempfile::tempdir().expect("tmp");
        for (t, n) in [(1, 37), (2, 0), (3, 147), (10, 5)] {
            let name = format!("A01_t{t}_cell_counts.json");
            std::fs::write(dir.path().join(name), format!(r#"{{"total_cells": {n}}}"#)).expect("write");
        }
        let written: Vec<PathBuf> =
            std::fs::read_dir(dir.path()).expect("dir").map(|e| e.expect("entry").path()).collect();
        let counts = ResultFiles {
            step: 2,
            dir: dir.path().to_path_buf(),
            stem: None,
            well: "A01".into(),
            key: "cell_counts".into(),
            written,
        };
        let qc = well_qc(&[counts], &[]);
        assert_eq!(qc.cells, Some(37), "the first group's");
        let by_group: Vec<(&str, u64)> = qc.cells_by_group.iter().map(|g| (g.group.as_str(), g.cells)).collect();
        assert_eq!(by_group, [("t1", 37), ("t2", 0), ("t3", 147), ("t10", 5)], "in timepoint order");
        let mut wells = vec![done_well(qc)];
        flag(&mut wells);
        assert_eq!(wells[0].flags, ["empty: no cells counted in t2"]);
    }

    #[test]
    fn cells_come_from_the_first_json_of_the_plan_that_counts_them() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("A01_stats.json"), r#"{"mean": 3}"#).expect("write");
        std::fs::write(dir.path().join("A01_cell_counts.json"), r#"{"total_cells": 42}"#).expect("write");
        std::fs::write(dir.path().join("A01_other_counts.json"), r#"{"total_cells": 7}"#).expect("write");
        let written: Vec<PathBuf> = ["A01_stats.json", "A01_cell_counts.json", "A01_other_counts.json"]
            .iter()
            .map(|n| dir.path().join(n))
            .collect();
        let output = |step: usize, key: &str| ResultFiles {
            step,
            dir: dir.path().to_path_buf(),
            stem: Some(format!("A01_{key}")),
            well: "A01".into(),
            key: key.into(),
            written: written.clone(),
        };
        let qc = well_qc(&[output(1, "stats"), output(2, "cell_counts")], &[]);
        assert_eq!(qc.cells, Some(42), "the stats JSON counts no cells; the other file is no output of the plan");
        assert_eq!(well_qc(&[output(1, "stats")], &[]).cells, None);
    }

    #[test]
    fn where_two_steps_write_the_same_files_the_later_one_is_taken() {
        let output = |step: usize, dir: &str, key: &str| ResultFiles {
            step,
            dir: PathBuf::from(dir),
            stem: Some(format!("A01_{key}")),
            well: "A01".into(),
            key: key.into(),
            written: Vec::new(),
        };
        let steps = |outputs: Vec<ResultFiles>| latest_writers(outputs).iter().map(|o| o.step).collect::<Vec<_>>();
        assert_eq!(
            steps(vec![output(2, "r", "positions"), output(3, "r", "cells"), output(5, "r", "positions")]),
            [3, 5]
        );
        assert_eq!(steps(vec![output(2, "r", "positions"), output(5, "other", "positions")]), [2, 5], "another folder");
    }

    #[test]
    fn a_blurred_site_a_saturated_site_and_an_empty_well_are_flagged() {
        let key =
            |site, z| crate::plate::ImageKey { well: "A01".parse().expect("well"), site, channel: 1, z, timepoint: 1 };
        let plane =
            |site, z, focus, sat| PlaneQc { key: key(site, z), focus, saturated_fraction: sat, background: 5.0 };
        let planes = [plane(1, 1, 100.0, 0.0), plane(1, 2, 50.0, 0.0), plane(2, 1, 10.0, 0.01), plane(3, 1, 90.0, 0.0)];
        let site_qc = sites(&planes);
        assert_eq!(site_qc.len(), 3);
        assert_eq!(site_qc[0].focus, 100.0, "the sharpest plane of a site");
        let mut wells = vec![done_well(WellQc { sites: site_qc, cells: Some(0), ..WellQc::default() })];
        flag(&mut wells);
        let flags = &wells[0].flags;
        assert!(flags.iter().any(|f| f.starts_with("saturated: 1.00 % of site 2")), "{flags:?}");
        assert!(flags.iter().any(|f| f.starts_with("out of focus: site 2")), "{flags:?}");
        assert!(!flags.iter().any(|f| f.contains("site 1 channel 1 (")), "{flags:?}");
        assert!(flags.iter().any(|f| f == "empty: no cells counted"), "{flags:?}");
    }
}
