#!/usr/bin/env python3
"""OpenHCS itself opens a plate hcs wrote, and goes on with it.

    .venv-openhcs/bin/python scripts/check_openhcs_reads.py HCS_BINARY WORK_DIR

hcs writes a synthetic plate (2 wells, 2 × 2 sites, 2 channels, 3 z-planes), normalizes it
(`hcs run`, TIFF output: every site, channel and z-plane kept), and OpenHCS 0.8.6 (the peer, CPU
only; `scripts/setup-openhcs.sh` installs it) then opens the output plate through the
`openhcs_metadata.json` hcs wrote beside `hcs_plate.json`. Checked:

- OpenHCS takes it for an OpenHCS plate, read from hcs's main folder, with hcs's file names;
- it finds the wells, sites, channels, z-planes and timepoints hcs's `hcs_plate.json` lists,
  the site grid and the pixel size hcs gave it, and the channel names;
- an OpenHCS pipeline (its own `create_projection`, max over z) runs on it in OpenHCS's own
  executor, and each plane it writes equals the max over z of hcs's TIFFs (read with tifffile);
- OpenHCS changes nothing in hcs's output folder (every file's bytes and mode are as before).

Exits non-zero, saying what differed, on the first failure. WORK_DIR is emptied first.
"""
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

# Before OpenHCS is imported (its workers inherit them): no GPU, no GUI.
os.environ.setdefault("OPENHCS_CPU_ONLY", "true")
os.environ.setdefault("OPENHCS_HEADLESS", "true")

import numpy as np  # noqa: E402
import tifffile  # noqa: E402

PIPELINE = """
name = "normalize"

[[steps]]
name = "normalize"
func = { function = "stack_percentile_normalize", params = { low_percentile = 1.0, high_percentile = 99.0 } }
"""


def fail(message):
    print(f"check_openhcs_reads: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def snapshot(root):
    """Every file under `root`: its bytes' digest and its mode."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = (hashlib.sha256(path.read_bytes()).hexdigest(), stat.S_IMODE(path.stat().st_mode))
    return out


def hcs(binary, *args):
    run = subprocess.run([binary, *args], capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"hcs {' '.join(args)} exited {run.returncode}: {run.stderr}")


def write_plate(binary, work):
    """The synthetic plate and hcs's normalized output of it; the output folder."""
    plate, out = work / "plate", work / "out"
    hcs(binary, "synth", "--out", str(plate), "--wells", "A01,B02", "--grid", "2", "2", "--tile", "128",
        "--channels", "2", "--z", "3", "-q")
    (work / "normalize.toml").write_text(PIPELINE)
    hcs(binary, "run", str(work / "normalize.toml"), "--plate", str(plate), "--out", str(out), "--backend", "disk",
        "--workers", "2", "-q")
    if not (out / "openhcs_metadata.json").is_file():
        fail(f"hcs wrote no openhcs_metadata.json in {out}")
    return out


def hcs_planes(out):
    """The main folder and its planes as hcs lists them: {(well, site, channel, z, t): path}."""
    plate = json.loads((out / "hcs_plate.json").read_text())
    main = next(s for s in plate["subdirs"] if s["main"])
    planes = {}
    for key, ref in main["planes"]:
        planes[(key["well"], key["site"], key["channel"], key["z"], key["timepoint"])] = out / ref["path"]
    return main["name"], planes, plate["metadata"]


def open_in_openhcs(out, main, planes, metadata):
    """Open `out` with OpenHCS's orchestrator and check what it finds; the orchestrator."""
    from objectstate.lazy_factory import ensure_global_config_context
    from openhcs.constants.constants import AllComponents
    from openhcs.core.config import (GlobalPipelineConfig, LazyPathPlanningConfig, PathPlanningConfig,
                                     PipelineConfig)
    from openhcs.core.orchestrator.orchestrator import PipelineOrchestrator

    global_config = GlobalPipelineConfig(
        num_workers=1, use_threading=True,
        path_planning_config=PathPlanningConfig(sub_dir="images", output_dir_suffix="_openhcs"),
    )
    ensure_global_config_context(GlobalPipelineConfig, global_config)
    orchestrator = PipelineOrchestrator(out, pipeline_config=PipelineConfig(
        path_planning_config=LazyPathPlanningConfig(output_dir_suffix="_openhcs")))
    orchestrator.initialize()
    handler = orchestrator.microscope_handler
    if type(handler).__name__ != "OpenHCSMicroscopeHandler":
        fail(f"OpenHCS opened {out} with {type(handler).__name__}, not as an OpenHCS plate")
    if Path(orchestrator.input_dir).resolve() != (out / main).resolve():
        fail(f"OpenHCS reads {orchestrator.input_dir}, not hcs's main folder {out / main}")

    want = {
        AllComponents.WELL: sorted({k[0] for k in planes}),
        AllComponents.SITE: sorted({str(k[1]) for k in planes}),
        AllComponents.CHANNEL: sorted({str(k[2]) for k in planes}),
        AllComponents.Z_INDEX: sorted({str(k[3]) for k in planes}),
        AllComponents.TIMEPOINT: sorted({str(k[4]) for k in planes}),
    }
    for component, values in want.items():
        found = sorted(str(v) for v in orchestrator.get_component_keys(component))
        if found != values:
            fail(f"OpenHCS finds {component.value} {found}, hcs wrote {values}")

    grid = handler.metadata_handler.get_grid_dimensions(orchestrator.plate_path)
    if tuple(grid) != tuple(metadata["grid"]):
        fail(f"OpenHCS reads the site grid {grid}, hcs's plate has {metadata['grid']}")
    pixel = handler.metadata_handler.get_pixel_size(orchestrator.plate_path)
    if metadata["pixel_size_um"] is not None and abs(pixel - metadata["pixel_size_um"]) > 1e-9:
        fail(f"OpenHCS reads the pixel size {pixel}, hcs's plate has {metadata['pixel_size_um']}")
    declared = handler.metadata_handler.component_value_set(orchestrator.plate_path)
    names = dict(declared.values_for(AllComponents.CHANNEL) or {})
    for channel in metadata["channels"]:
        if names.get(str(channel["index"])) != channel["name"]:
            fail(f"OpenHCS names channel {channel['index']} {names.get(str(channel['index']))!r}, hcs {channel['name']!r}")
    print(f"OpenHCS opened {out.name}: {type(handler).__name__}, {len(want[AllComponents.WELL])} wells × "
          f"{len(want[AllComponents.SITE])} sites × {len(want[AllComponents.CHANNEL])} channels × "
          f"{len(want[AllComponents.Z_INDEX])} z, grid {tuple(grid)}, pixel size {pixel}")
    return orchestrator


def project_in_openhcs(orchestrator, out):
    """Run OpenHCS's own max-over-z projection on the plate; the folder it wrote the planes to."""
    import queue

    from openhcs.constants import MULTIPROCESSING_AXIS
    from openhcs.constants.constants import VariableComponents
    from openhcs.core.config import LazyProcessingConfig, LazyStepMaterializationConfig
    from openhcs.core.progress import ProgressExecutionContext, ProgressQueue, set_progress_queue
    from openhcs.core.steps.function_step import FunctionStep
    from openhcs.processing.backends.processors.numpy_processor import (NumpyStackProjectionMethod,
                                                                        create_projection)

    step = FunctionStep(
        name="z max",
        func=(create_projection, {"method": NumpyStackProjectionMethod.MAX}),
        processing_config=LazyProcessingConfig(variable_components=[VariableComponents.Z_INDEX]),
        step_materialization_config=LazyStepMaterializationConfig(enabled=True),
    )
    class Events(ProgressQueue):
        """Where OpenHCS's compiler reports progress (it requires one): kept, not shown."""

        def __init__(self):
            self.events = []

        def put(self, event):
            self.events.append(event)

    wells = orchestrator.get_component_keys(MULTIPROCESSING_AXIS)
    set_progress_queue(Events())
    try:
        bundle = orchestrator.compile_pipelines(pipeline_definition=[step], well_filter=wells)
    finally:
        set_progress_queue(None)
    results = orchestrator.execute_compiled_plate(
        execution_bundle=bundle, max_workers=1, progress_queue=queue.Queue(),
        progress_context=ProgressExecutionContext(execution_id="check-openhcs-reads", plate_id=str(out)),
    )
    failed = {k: v for k, v in results.items() if not v.is_success()}
    if failed or not results:
        fail(f"OpenHCS's run failed: {failed or 'no wells ran'}")
    written = out.parent / f"{out.name}_openhcs" / "images"
    if not written.is_dir():
        fail(f"OpenHCS wrote no {written}")
    return written


def compare(written, planes):
    """Each plane OpenHCS wrote equals the max over z of hcs's planes of that site and channel."""
    stacks = {}
    for (well, site, channel, z, t), path in planes.items():
        stacks.setdefault((well, site, channel, t), []).append((z, path))
    for (well, site, channel, t), members in sorted(stacks.items()):
        want = np.max([tifffile.imread(p) for _, p in sorted(members)], axis=0)
        candidates = sorted(written.glob(f"{well}_s{site:03d}_w{channel}_*.tif"))
        if len(candidates) != 1:
            fail(f"OpenHCS wrote {len(candidates)} planes for {well} site {site} channel {channel} in {written}")
        got = tifffile.imread(candidates[0])
        if got.shape != want.shape or not np.array_equal(got.astype(np.float64), want.astype(np.float64)):
            diff = np.abs(got.astype(np.float64) - want.astype(np.float64)).max() if got.shape == want.shape else None
            fail(f"{candidates[0].name}: OpenHCS's z max differs from hcs's planes' (shape {got.shape} vs "
                 f"{want.shape}, largest difference {diff})")
    print(f"OpenHCS's z max of {len(stacks)} stacks equals the max of hcs's planes, pixel for pixel")


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    binary, work = os.path.abspath(sys.argv[1]), Path(sys.argv[2]).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out = write_plate(binary, work)
    main_folder, planes, metadata = hcs_planes(out)
    before = snapshot(out)
    orchestrator = open_in_openhcs(out, main_folder, planes, metadata)
    written = project_in_openhcs(orchestrator, out)
    compare(written, planes)
    after = snapshot(out)
    if after != before:
        changed = sorted(set(before) ^ set(after) | {k for k in before if k in after and before[k] != after[k]})
        fail(f"OpenHCS changed hcs's output folder: {changed[:10]}")
    print("check_openhcs_reads: ok: OpenHCS opened hcs's output plate, ran on it, and left it as it was")


if __name__ == "__main__":
    main()
