"""Check a run's report files with the tools a scientist would load them with.

    python scripts/check_run_report.py OUTPUT_ROOT [--kind demo|local|slurm]

`results/trace.tsv` is loaded with pandas (`read_csv(sep="\\t")`): the documented columns, one
row per finished well x step (cross-checked against `results/run.json`), no duplicate
(well, step); `run.json` is loaded with the json module; `report.html` must embed the data and
`overview.png` must be a PNG. Prints what it checked; exits 1 on the first failure.
"""

import argparse
import json
import pathlib
import sys

import pandas as pd

COLUMNS = [
    "well", "status", "step", "name", "worker", "start", "start_s", "duration_s", "planes_in",
    "planes_out", "bytes_read", "bytes_written", "rss_mib", "peak_rss_mib", "device", "retries",
]


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("output_root", type=pathlib.Path)
    parser.add_argument("--kind", default=None)
    args = parser.parse_args()
    results = args.output_root / "results"
    run = json.loads((results / "run.json").read_text())
    if args.kind and run["kind"] != args.kind:
        fail(f"run.json kind {run['kind']!r}, expected {args.kind!r}")
    trace = pd.read_csv(results / "trace.tsv", sep="\t")
    if list(trace.columns) != COLUMNS:
        fail(f"trace.tsv columns {list(trace.columns)}")
    ran = [w for w in run["wells"] if w["status"] == "done"]
    steps = len(run["steps"])
    done_rows = trace[trace["status"] == "done"]
    if len(done_rows) != len(ran) * steps:
        fail(f"{len(done_rows)} rows for {len(ran)} wells x {steps} steps")
    if trace.duplicated(["well", "step"]).any():
        fail("a (well, step) appears twice")
    if sorted(done_rows["well"].unique()) != sorted(w["well"] for w in ran):
        fail("the wells of trace.tsv and run.json differ")
    if (trace["duration_s"] < 0).any() or trace["planes_in"].isna().any():
        fail("negative durations or missing plane counts")
    starts = pd.to_datetime(trace["start"], utc=True)
    if starts.isna().any():
        fail("start is not a timestamp pandas reads")
    html = (results / "report.html").read_text()
    if "__HCS_REPORT_DATA__" in html or 'id="hcs-data"' not in html:
        fail("report.html does not embed the run's data")
    if (results / "overview.png").read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        fail("overview.png is not a PNG")
    print(
        f"ok: {results}: run.json ({run['kind']}, {len(run['wells'])} wells: {run['counts']}), "
        f"trace.tsv {trace.shape[0]} rows x {trace.shape[1]} columns = {len(ran)} wells x {steps} steps, "
        f"{trace['duration_s'].sum():.2f} s of steps; report.html {len(html.encode()) / 1024:.0f} KiB"
    )


if __name__ == "__main__":
    main()
