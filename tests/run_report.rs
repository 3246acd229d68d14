//! Every local run explains itself in its output's `results/`: `run.json`, `trace.tsv`,
//! `report.html`, `overview.png` and the `hcs.log` — failed wells included, with the error naming
//! the file; a resumed run reports its wells as resumed; exit statuses say what happened; an
//! output folder holding another pipeline's outputs is refused unless `--force`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HCS: &str = env!("CARGO_BIN_EXE_hcs");

fn hcs(args: &[&str]) -> Output {
    Command::new(HCS).args(args).env("HCS_LOG", "info").output().expect("hcs runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn run_json(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("results/run.json")).expect("run.json")).expect("json")
}

fn well<'a>(run: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    run["wells"].as_array().and_then(|w| w.iter().find(|w| w["well"] == name)).expect("well in run.json")
}

/// The first image file of `well` in the plate.
fn image_of(plate: &Path, well: &str) -> PathBuf {
    fn walk(dir: &Path, well: &str) -> Option<PathBuf> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).collect();
        entries.sort();
        entries.iter().find_map(|p| {
            if p.is_dir() {
                walk(p, well)
            } else {
                let name = p.file_name()?.to_str()?;
                (name.starts_with(&format!("{well}_")) && name.ends_with(".tif")).then(|| p.clone())
            }
        })
    }
    walk(plate, well).expect("an image of the well")
}

#[test]
fn a_run_with_a_failed_well_reports_every_well_and_exits_1_then_resumes() {
    let dir = tempfile::tempdir().expect("tmp");
    let (plate, out) = (dir.path().join("plate"), dir.path().join("out"));
    let p = |p: &Path| p.to_str().expect("utf-8").to_string();
    let synth = hcs(&["synth", "--out", &p(&plate), "--wells", "A01,A02,B01", "--tile", "128"]);
    assert!(synth.status.success(), "{}", text(&synth));
    // B01 has a truncated image: its well fails, naming the file; the others finish.
    let broken = image_of(&plate, "B01");
    let bytes = std::fs::read(&broken).expect("read");
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).expect("truncate");
    let pipeline = "examples/pipelines/canonical.toml";
    let args = ["run", pipeline, "--plate", &p(&plate), "--out", &p(&out), "--workers", "2"];

    let first = hcs(&args);
    assert_eq!(first.status.code(), Some(1), "wells failed: exit 1\n{}", text(&first));
    let run = run_json(&out);
    assert_eq!(run["kind"], "local");
    assert_eq!(run["pipeline"]["name"], "canonical");
    // 2 workers, and the canonical steps' 3 groups at once keep both busy with one well.
    assert_eq!((run["workers"].as_u64(), run["wells_at_once"].as_u64()), (Some(2), Some(1)));
    assert_eq!((run["counts"]["done"].as_u64(), run["counts"]["failed"].as_u64()), (Some(2), Some(1)));
    let b01 = well(&run, "B01");
    assert_eq!(b01["status"], "failed");
    let file_name = broken.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(b01["error"].as_str().is_some_and(|e| e.contains(file_name)), "the error names the file: {b01}");
    assert!(b01["flags"].as_array().is_some_and(|f| !f.is_empty()));
    let steps = run["steps"].as_array().expect("steps").len();
    for name in ["A01", "A02"] {
        let w = well(&run, name);
        assert_eq!(w["status"], "done");
        assert_eq!(w["steps"].as_array().map(Vec::len), Some(steps));
        assert!(w["worker"].as_u64().is_some_and(|k| k < 2), "{w}");
        assert!(w["peak_rss_mib"].as_f64().is_some_and(|m| m > 0.0));
    }
    let tsv = std::fs::read_to_string(out.join("results/trace.tsv")).expect("trace.tsv");
    assert_eq!(tsv.lines().count(), 1 + 2 * steps, "a header and one row per finished well × step");
    let html = std::fs::read_to_string(out.join("results/report.html")).expect("report.html");
    assert!(html.contains("\"B01\"") && html.contains("\"failed\""));
    let log = std::fs::read_to_string(out.join("results/hcs.log")).expect("hcs.log");
    assert!(log.contains("hcs started") && log.contains("well failed") && log.contains("B01"), "{log}");
    assert!(text(&first).contains("report: "), "the summary points at the report");

    // Again: the finished wells are verified and skipped, and reported as resumed.
    let again = hcs(&args);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    let run = run_json(&out);
    assert_eq!(run["counts"]["resumed"].as_u64(), Some(2), "{}", run["counts"]);
    assert_eq!(well(&run, "A01")["steps"].as_array().map(Vec::len), Some(steps), "the trace of the earlier run");
    let log = std::fs::read_to_string(out.join("results/hcs.log")).expect("hcs.log");
    assert_eq!(log.matches("hcs started").count(), 2, "the log is appended run after run");
}

/// `overview.png` and the report's thumbnails (their `data:` URIs) of an output.
fn pictures(out: &Path) -> (Vec<u8>, Vec<String>) {
    let html = std::fs::read_to_string(out.join("results/report.html")).expect("report.html");
    let thumbnails =
        html.split("data:image/png;base64,").skip(1).map(|s| s.chars().take_while(|c| *c != '"').collect());
    (std::fs::read(out.join("results/overview.png")).expect("overview.png"), thumbnails.collect())
}

#[test]
fn pictures_shrunk_as_the_run_writes_equal_pictures_read_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let (plate, out) = (dir.path().join("plate"), dir.path().join("out"));
    let p = |p: &Path| p.to_str().expect("utf-8").to_string();
    let synth = hcs(&["synth", "--out", &p(&plate), "--wells", "A01,B02", "--tile", "128"]);
    assert!(synth.status.success(), "{}", text(&synth));
    let args = ["run", "examples/pipelines/canonical.toml", "--plate", &p(&plate), "--out", &p(&out)];
    let with_log = |level: &str| {
        let o = Command::new(HCS).args(args).env("HCS_LOG", level).output().expect("hcs runs");
        assert!(o.status.success(), "{}", text(&o));
        text(&o)
    };
    // The run keeps its pictures' planes as it writes them (2 wells × 2 channels) ...
    let first = with_log("info,hcs::report::overview=debug");
    assert!(first.contains("shrunk_as_written=4 read_back=0"), "{first}");
    let (overview, thumbnails) = pictures(&out);
    assert_eq!(thumbnails.len(), 2, "one thumbnail per well");
    // ... and a second run, which resumes both wells, reads every plane back from the files.
    let second = with_log("info,hcs::report::overview=debug");
    assert!(second.contains("shrunk_as_written=0 read_back=4"), "{second}");
    assert_eq!(pictures(&out), (overview, thumbnails), "the same pictures either way");
}

#[test]
fn another_pipeline_into_the_same_output_is_refused_unless_forced() {
    let dir = tempfile::tempdir().expect("tmp");
    let (plate, out) = (dir.path().join("plate"), dir.path().join("out"));
    let p = |p: &Path| p.to_str().expect("utf-8").to_string();
    assert!(hcs(&["synth", "--out", &p(&plate), "--wells", "A01", "--tile", "128"]).status.success());
    let (plate_arg, out_arg) = (p(&plate), p(&out));
    let run = |pipeline: &str, extra: &[&str]| {
        let mut args = vec!["run", pipeline, "--plate", &plate_arg, "--out", &out_arg];
        args.extend_from_slice(extra);
        hcs(&args)
    };
    let first = run("examples/pipelines/canonical.toml", &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let before = common::output_files(&out);

    let other = run("examples/pipelines/demo.toml", &[]);
    assert_eq!(other.status.code(), Some(2), "refused: exit 2\n{}", text(&other));
    let message = text(&other);
    assert!(message.contains("pipeline `canonical`") && message.contains("--force"), "{message}");
    assert_eq!(common::output_files(&out), before, "nothing in the output changed");

    // The same command resumes; `--force` replaces the other pipeline's outputs.
    assert_eq!(run("examples/pipelines/canonical.toml", &[]).status.code(), Some(0));
    let forced = run("examples/pipelines/demo.toml", &["--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    let run = run_json(&out);
    assert_eq!((run["pipeline"]["name"].as_str(), run["counts"]["done"].as_u64()), (Some("demo"), Some(1)));
    let old_only: Vec<&PathBuf> =
        before.keys().filter(|k| !k.starts_with("results") && !common::output_files(&out).contains_key(*k)).collect();
    assert!(!old_only.is_empty(), "the canonical pipeline wrote files the demo does not");
    assert!(old_only.iter().all(|k| !out.join(k).exists()), "the old outputs are gone: {old_only:?}");

    // A folder of someone else's files is refused too.
    let theirs = dir.path().join("theirs");
    std::fs::create_dir_all(&theirs).expect("dir");
    std::fs::write(theirs.join("thesis.docx"), b"x").expect("write");
    let refused = hcs(&["run", "examples/pipelines/demo.toml", "--plate", &p(&plate), "--out", &p(&theirs)]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused).contains("thesis.docx"), "{}", text(&refused));
}

#[test]
fn an_invalid_pipeline_exits_2_before_touching_anything() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\n[[steps]]\nfunc = \"no_such_function\"\n").expect("write");
    let plate = dir.path().join("plate");
    let p = |p: &Path| p.to_str().expect("utf-8").to_string();
    assert!(hcs(&["synth", "--out", &p(&plate), "--wells", "A01", "--tile", "64"]).status.success());
    let out = dir.path().join("out");
    let o = hcs(&["run", &p(&bad), "--plate", &p(&plate), "--out", &p(&out)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!out.exists(), "no output folder for a pipeline that does not compile");
    assert!(
        String::from_utf8_lossy(&Command::new(HCS).arg("--help").output().expect("help").stdout)
            .contains("Exit status:")
    );
}

#[test]
fn a_plate_with_a_pixel_size_gets_scale_bars_and_its_channel_names_in_the_report() {
    let dir = tempfile::tempdir().expect("tmp");
    let (plate, out) = (dir.path().join("plate"), dir.path().join("out"));
    let p = |p: &Path| p.to_str().expect("utf-8").to_string();
    let synth = hcs(&["synth", "--out", &p(&plate), "--format", "opera-phenix", "--wells", "A01", "--tile", "128"]);
    assert!(synth.status.success(), "{}", text(&synth));
    let o = hcs(&["run", "examples/pipelines/canonical.toml", "--plate", &p(&plate), "--out", &p(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run = run_json(&out);
    let pixel = run["plate"]["pixel_size_um"].as_f64().expect("Index.xml gives the pixel size");
    assert!(pixel > 0.0);
    assert!(run["plate"]["channels"].as_array().is_some_and(|c| !c.is_empty()));
    let html = std::fs::read_to_string(out.join("results/report.html")).expect("report.html");
    assert!(html.contains("\"um_per_px\":") && !html.contains("\"um_per_px\":null"), "thumbnails carry their scale");
    assert!(!html.contains("no scale bars"), "no note about a missing pixel size");
}

/// A well whose stitching fell back to the nominal grid (a 30 % overlap where the canonical
/// pipeline expects 10 %) is flagged in run.json and named in a warning; with
/// `on_stitch_fallback = "fail"` the run exits 1.
#[test]
fn a_stitching_fallback_is_named_and_on_stitch_fallback_fail_fails_the_run() {
    let dir = tempfile::tempdir().expect("tmp");
    let plate = dir.path().join("plate");
    let p = |p: &Path| p.to_str().expect("utf-8").to_string();
    let synth = hcs(&["synth", "--out", &p(&plate), "--wells", "A01", "--tile", "128", "--overlap", "0.3"]);
    assert!(synth.status.success(), "{}", text(&synth));
    let pipeline = "examples/pipelines/canonical.toml";
    let out = dir.path().join("warn");
    let warned = hcs(&["run", pipeline, "--plate", &p(&plate), "--out", &p(&out)]);
    assert_eq!(warned.status.code(), Some(0), "warn by default\n{}", text(&warned));
    assert!(text(&warned).contains("stitching fell back") && text(&warned).contains("A01"), "{}", text(&warned));
    let run = run_json(&out);
    let a01 = well(&run, "A01");
    assert!(a01["qc"]["stitching"]["model_placed"].as_u64().is_some_and(|n| n > 0), "{}", a01["qc"]);
    assert_eq!(a01["qc"]["stitching"]["step"], 4, "the canonical pipeline's tile positions step");
    assert!(
        a01["flags"].as_array().is_some_and(|f| f.iter().any(|f| f.as_str().is_some_and(|f| f.contains("fell back"))))
    );

    let config = dir.path().join("config.toml");
    std::fs::write(&config, "on_stitch_fallback = \"fail\"\n").expect("config");
    let out = dir.path().join("fail");
    let failed = hcs(&["run", pipeline, "--plate", &p(&plate), "--out", &p(&out), "--config", &p(&config)]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(text(&failed).contains("in 1 well (A01; on_stitch_fallback = \"fail\")"), "{}", text(&failed));

    // The setting on the assembling step alone fails the run too (README: a step's `config`
    // takes it), and the warning names the report where the results folder really is.
    let canonical = std::fs::read_to_string(pipeline).expect("pipeline");
    let assemble = "func = \"assemble_stack\"\n";
    assert!(canonical.contains(assemble));
    let on_step = dir.path().join("on_step.toml");
    let text_on_step =
        canonical.replacen(assemble, &format!("{assemble}config = {{ on_stitch_fallback = \"fail\" }}\n"), 1);
    std::fs::write(&on_step, text_on_step).expect("pipeline");
    std::fs::write(&config, "results_folder = \"res\"\n").expect("config");
    let out = dir.path().join("fail_on_step");
    let failed = hcs(&["run", &p(&on_step), "--plate", &p(&plate), "--out", &p(&out), "--config", &p(&config)]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    let report = out.join("res/report.html");
    assert!(report.exists(), "the report is in the results folder");
    assert!(text(&failed).contains(&format!("(see {})", report.display())), "{}", text(&failed));
    // The steps that place the tiles decide: `warn` on both overrides a pipeline-wide `fail`.
    let positions = "func = \"ashlar_compute_tile_positions\"\n";
    assert!(canonical.contains(positions));
    let warn = |func: &str| format!("{func}config = {{ on_stitch_fallback = \"warn\" }}\n");
    let overridden = canonical.replacen(positions, &warn(positions), 1).replacen(assemble, &warn(assemble), 1);
    let on_steps = dir.path().join("warn_on_steps.toml");
    std::fs::write(&on_steps, overridden).expect("pipeline");
    std::fs::write(&config, "on_stitch_fallback = \"fail\"\n").expect("config");
    let out = dir.path().join("warn_on_steps");
    let warned = hcs(&["run", &p(&on_steps), "--plate", &p(&plate), "--out", &p(&out), "--config", &p(&config)]);
    assert_eq!(warned.status.code(), Some(0), "{}", text(&warned));
    assert!(text(&warned).contains("stitching fell back"), "{}", text(&warned));
    // A step that neither computes nor reads the positions does not decide.
    let z = "name = \"z flattening\"\n";
    assert!(canonical.contains(z));
    let on_other = dir.path().join("fail_on_other_step.toml");
    std::fs::write(&on_other, canonical.replacen(z, &format!("{z}config = {{ on_stitch_fallback = \"fail\" }}\n"), 1))
        .expect("pipeline");
    std::fs::write(&config, "on_stitch_fallback = \"warn\"\n").expect("config");
    let out = dir.path().join("fail_on_other_step");
    let warned = hcs(&["run", &p(&on_other), "--plate", &p(&plate), "--out", &p(&out), "--config", &p(&config)]);
    assert_eq!(warned.status.code(), Some(0), "{}", text(&warned));
    assert!(text(&warned).contains("stitching fell back"), "{}", text(&warned));
}

/// The report reads the edge table the plan names (`<well>_positions_edges.csv` of step 4),
/// not whatever `<well>_*_edges.csv` lies in the results folder: a table another pipeline left
/// there, showing a fallback, neither flags the well nor fails a run whose own stitching placed
/// every tile from the images.
#[test]
fn an_edge_table_the_plan_does_not_name_is_not_taken_for_the_runs_stitching() {
    let dir = tempfile::tempdir().expect("tmp");
    let plate = dir.path().join("plate");
    let p = |p: &Path| p.to_str().expect("utf-8").to_string();
    let synth = hcs(&["synth", "--out", &p(&plate), "--wells", "A01", "--tile", "512", "--z", "1", "--channels", "1"]);
    assert!(synth.status.success(), "{}", text(&synth));
    let out = dir.path().join("out");
    let results = out.join("results");
    std::fs::create_dir_all(&results).expect("results");
    // Tile 4 joined by no accepted edge: one tile placed from the grid.
    std::fs::write(results.join("A01_aaa.csv"), "site,row,col,x,y\n1,0,0,0,0\n2,0,1,90,0\n3,1,0,0,92\n4,1,1,200,200\n")
        .expect("write");
    std::fs::write(
        results.join("A01_aaa_edges.csv"),
        "site_a,site_b,dx,dy,ncc,accepted,rejected_because\n1,2,90,0,0.9,true,\n1,3,0,91,0.8,true,\n2,4,0,90,0.1,false,low\n",
    )
    .expect("write");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "on_stitch_fallback = \"fail\"\n").expect("config");
    let pipeline = "examples/pipelines/canonical.toml";
    let run = hcs(&["run", pipeline, "--plate", &p(&plate), "--out", &p(&out), "--config", &p(&config), "--force"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(!text(&run).contains("stitching fell back"), "{}", text(&run));
    let run = run_json(&out);
    let stitching = &well(&run, "A01")["qc"]["stitching"];
    assert_eq!((stitching["step"].as_u64(), stitching["model_placed"].as_u64()), (Some(4), Some(0)), "{stitching}");
    assert_eq!(stitching["edges"], 12, "the 3 × 3 grid's own table, not the 3 edges left in the folder");
}

/// The compiler's per-well memory estimate against what the well really held: with one worker,
/// the heap bytes in use at the first well's peak (counted by the `hcs` binary's allocator),
/// less those in use when it started. The RSS is reported beside it but not compared: it also
/// counts freed memory the allocator keeps for reuse (see `hcs::exec::heap`).
#[test]
fn the_memory_estimate_is_within_a_quarter_of_the_heap_a_well_held() {
    let dir = tempfile::tempdir().expect("tmp");
    let (plate, out) = (dir.path().join("plate"), dir.path().join("out"));
    let p = |p: &Path| p.to_str().expect("utf-8").to_string();
    let synth = hcs(&["synth", "--out", &p(&plate), "--wells", "A01,A02", "--tile", "256"]);
    assert!(synth.status.success(), "{}", text(&synth));
    let pipeline = "examples/pipelines/canonical.toml";
    let done = hcs(&["run", pipeline, "--plate", &p(&plate), "--out", &p(&out), "--workers", "1"]);
    assert!(done.status.success(), "{}", text(&done));
    let run = run_json(&out);
    let a01 = well(&run, "A01");
    let estimate = a01["estimated_peak_mib"].as_f64().expect("an estimate");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(".hcs/wells/A01.json")).expect("record")).expect("json");
    let (start, peak) = (record["trace"]["heap_at_start_mib"].as_f64(), record["trace"]["peak_heap_mib"].as_f64());
    let (start, peak) = (start.expect("heap at start"), peak.expect("peak heap"));
    assert_eq!(a01["peak_heap_mib"].as_f64(), Some(peak), "run.json carries the record's figure");
    let held = peak - start;
    assert!(held > 1.0, "a well of 54 planes of 256² holds megabytes: {held} MiB");
    // The estimate counts the writer's queue at its bound; what the queue really held depends
    // on the disk (a fast one keeps it near empty), and the record says how much it was.
    let (budget, waited) = (a01["write_behind_mib"].as_f64(), a01["peak_write_behind_mib"].as_f64());
    let (budget, waited) = (budget.expect("the plan's queue bound"), waited.expect("the queue's peak"));
    assert!(budget > 0.0 && waited > 0.0, "the well's files went through its writer: {budget} {waited}");
    // Every file here (a 256² plane) is far smaller than the bound, so none waited alone over it.
    assert!(waited <= budget, "the queue held {waited:.2} MiB, over its bound of {budget:.2} MiB");
    let as_used = estimate - budget + waited;
    let ratio = as_used / held;
    assert!(
        (0.75..=1.25).contains(&ratio),
        "estimate {estimate:.1} MiB with its queue as used ({waited:.1} of {budget:.1} MiB): {as_used:.1}, held {held:.1} MiB: {ratio:.2}"
    );
}

#[test]
fn a_run_of_some_wells_reports_the_whole_output_plate() {
    let dir = tempfile::tempdir().expect("tmp");
    let (plate, out) = (dir.path().join("plate"), dir.path().join("out"));
    let p = |p: &Path| p.to_str().expect("utf-8").to_string();
    let synth = hcs(&["synth", "--out", &p(&plate), "--wells", "A01,A02,B01", "--tile", "128"]);
    assert!(synth.status.success(), "{}", text(&synth));
    let pipeline = "examples/pipelines/canonical.toml";
    let run_wells = |wells: &str| {
        let o = hcs(&["run", pipeline, "--plate", &p(&plate), "--out", &p(&out), "--wells", wells]);
        assert!(o.status.success(), "{}", text(&o));
        run_json(&out)
    };
    // A01 alone: the others are not run, and the report says so.
    let first = run_wells("A01");
    let statuses = |run: &serde_json::Value| -> Vec<(String, String)> {
        run["wells"]
            .as_array()
            .expect("wells")
            .iter()
            .map(|w| (w["well"].as_str().expect("name").to_string(), w["status"].as_str().expect("status").to_string()))
            .collect()
    };
    let owned = |pairs: &[(&str, &str)]| pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    assert_eq!(statuses(&first), owned(&[("A01", "done"), ("A02", "not_run"), ("B01", "not_run")]));
    // Then B01: A01 stays in the report, complete from the earlier run, with its figures.
    let second = run_wells("B01");
    assert_eq!(statuses(&second), owned(&[("A01", "done_earlier"), ("A02", "not_run"), ("B01", "done")]));
    let a01 = well(&second, "A01");
    assert!(a01["qc"]["stitching"]["edges"].as_u64().is_some_and(|e| e > 0), "A01's stitching figures: {a01}");
    assert!(a01["steps"].as_array().is_some_and(|s| !s.is_empty()), "A01's trace from its record");
    assert!(well(&second, "A02")["flags"].as_array().is_some_and(|f| !f.is_empty()), "A02 flagged as not complete");
    assert_eq!(second["counts"]["done_earlier"].as_u64(), Some(1), "{}", second["counts"]);
    let html = std::fs::read_to_string(out.join("results/report.html")).expect("report.html");
    assert!(html.contains("\"done_earlier\""));
}

#[test]
fn a_fallback_of_a_well_done_earlier_does_not_fail_a_run_of_other_wells() {
    let dir = tempfile::tempdir().expect("tmp");
    let (plate, out) = (dir.path().join("plate"), dir.path().join("out"));
    let p = |p: &Path| p.to_str().expect("utf-8").to_string();
    let synth = hcs(&[
        "synth",
        "--out",
        &p(&plate),
        "--wells",
        "A01,A02",
        "--grid",
        "2",
        "2",
        "--tile",
        "256",
        "--z",
        "1",
        "--channels",
        "1",
    ]);
    assert!(synth.status.success(), "{}", text(&synth));
    // A01's tiles made featureless: no edge can be measured, so its stitching falls back.
    let mut blanked = 0;
    let mut stack = vec![plate.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("list").flatten() {
            let path = entry.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if path.is_dir() {
                stack.push(path);
            } else if name.starts_with("A01_") && name.ends_with(".tif") {
                let flat = hcs::vfs::PlaneData::U16(ndarray::Array2::from_elem((256, 256), 1000u16));
                hcs::vfs::tiff::write_tiff(&path, &[flat], hcs::vfs::tiff::TiffCompression::None).expect("write");
                blanked += 1;
            }
        }
    }
    assert!(blanked > 0);
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "on_stitch_fallback = \"fail\"\n").expect("config");
    let run_wells = |wells: &str| {
        let pipeline = "examples/pipelines/canonical.toml";
        hcs(&["run", pipeline, "--plate", &p(&plate), "--out", &p(&out), "--config", &p(&config), "--wells", wells])
    };
    let first = run_wells("A01");
    assert_eq!(first.status.code(), Some(1), "A01 fell back: {}", text(&first));
    // A02 stitches from its images: its run passes, though the report still shows A01's fallback.
    let second = run_wells("A02");
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let run = run_json(&out);
    let a01 = well(&run, "A01");
    assert_eq!(a01["status"], "done_earlier");
    assert!(a01["qc"]["stitching"]["model_placed"].as_u64().is_some_and(|n| n > 0), "{a01}");
    assert_eq!(well(&run, "A02")["qc"]["stitching"]["model_placed"], 0);
}

#[test]
fn fail_fast_counts_the_wells_it_left_unstarted_apart_from_the_failed() {
    let dir = tempfile::tempdir().expect("tmp");
    let (plate, out) = (dir.path().join("plate"), dir.path().join("out"));
    let p = |p: &Path| p.to_str().expect("utf-8").to_string();
    let synth = hcs(&["synth", "--out", &p(&plate), "--wells", "A01,B02", "--tile", "64"]);
    assert!(synth.status.success(), "{}", text(&synth));
    let broken = image_of(&plate, "A01");
    let bytes = std::fs::read(&broken).expect("read");
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).expect("truncate");
    let args = ["--out", &p(&out), "--workers", "1", "--wells-at-once", "1", "--fail-fast"];
    let o = hcs(&[&["run", "examples/pipelines/canonical.toml", "--plate", &p(&plate)][..], &args[..]].concat());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("0 wells done, 0 skipped (already complete), 1 failed, 1 not run"), "{stdout}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("error: 1 of 2 wells failed (1 not run after it: --fail-fast)"), "{stderr}");
    assert_eq!(well(&run_json(&out), "B02")["status"], "not_run");
}
