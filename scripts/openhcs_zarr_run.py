#!/usr/bin/env python3
"""Run the peer's canonical pipeline (its `pipeline_def.py`) with OpenHCS storing its outputs in
Zarr instead of TIFF (`VFSConfig(materialization_backend=ZARR)`); everything else is the
peer's own configuration. Used by scripts/make_openhcs_output.sh.

    openhcs_zarr_run.py PEER_DIR PLATE RUN_DIR [COMPRESSOR]

COMPRESSOR is one of OpenHCS's `ZarrCompressor` names (`zlib`, its default, `lz4`, `zstd`,
`blosc`, `none`), at OpenHCS's default level.
The plate is copied into RUN_DIR first (OpenHCS writes into its input plate); the output plate
is RUN_DIR/<plate name>_openhcs.
"""
import dataclasses
import shutil
import sys
from pathlib import Path

peer, plate, run = (Path(a).resolve() for a in sys.argv[1:4])
compressor = sys.argv[4] if len(sys.argv) > 4 else None
sys.path.insert(0, str(peer))
import pipeline_def  # noqa: E402  (sets OPENHCS_CPU_ONLY / OPENHCS_HEADLESS before openhcs)

peer_configs = pipeline_def.make_configs


def zarr_configs(num_workers, use_threading):
    from openhcs.core.config import MaterializationBackend, VFSConfig, ZarrCompressor, ZarrConfig

    global_config, pipeline_config = peer_configs(num_workers, use_threading)
    vfs = VFSConfig(materialization_backend=MaterializationBackend.ZARR)
    global_config = dataclasses.replace(global_config, vfs_config=vfs)
    if compressor is not None:
        zarr_config = ZarrConfig(compressor=ZarrCompressor(compressor))
        global_config = dataclasses.replace(global_config, zarr_config=zarr_config)
    return global_config, pipeline_config


pipeline_def.make_configs = zarr_configs
shutil.rmtree(run, ignore_errors=True)
run.mkdir(parents=True)
shutil.copytree(plate, run / plate.name)
pipeline_def.run(run / plate.name, num_workers=1, use_threading=True)
