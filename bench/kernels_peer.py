#!/usr/bin/env python3
"""The peer's own numpy kernels (OpenHCS 0.8.6, as ../shared/peers/openhcs/setup.sh installs it)
on the data of hcs-kernels/benches/kernels.rs. Run with the peer's venv python; prints JSON
{name: median seconds}. Names match the criterion benchmarks; the peer's BaSiC and cell counter
are its own algorithms (see the README's performance section)."""
import json
import os
import sys
import time

os.environ.setdefault("OPENHCS_CPU_ONLY", "true")
os.environ.setdefault("OPENHCS_HEADLESS", "true")
import logging

logging.disable(logging.INFO)
import numpy as np
from openhcs.processing.backends.analysis.cell_counting_cpu import count_cells_single_channel
from openhcs.processing.backends.assemblers.assemble_stack_cpu import assemble_stack_cpu
from openhcs.processing.backends.enhance.basic_processor_numpy import basic_flatfield_correction_numpy
from openhcs.processing.backends.processors import numpy_processor as npp

sys.path.insert(0, os.path.dirname(__file__))
from kernels_python import STACK, timed  # noqa: E402

POSITIONS = [(float(i % 3) * 921.6, float(i // 3) * 921.6) for i in range(9)]
OPS = {
    "max_projection": (lambda: npp.create_projection(STACK), 5),
    "mean_projection": (lambda: npp.mean_projection(STACK), 5),
    "create_composite": (lambda: npp.create_composite(STACK), 5),
    "stack_percentile_normalize": (lambda: npp.stack_percentile_normalize(STACK, 1.0, 99.0), 3),
    "percentile_normalize": (lambda: npp.percentile_normalize(STACK, 1.0, 99.0), 3),
    "tophat_r50_ds4": (lambda: npp.tophat(STACK, selem_radius=50, downsample_factor=4), 1),
    "assemble_stack": (lambda: assemble_stack_cpu(STACK, POSITIONS), 3),
    "basic_flatfield_correction": (lambda: basic_flatfield_correction_numpy(STACK), 1),
    # One plane, scaled to 9 planes, as for scikit-image's exact top-hat.
    "count_cells_blob_log": (lambda: count_cells_single_channel(STACK[:1]), 1),
}
scale = {"count_cells_blob_log": 9.0}
names = [n for n in (sys.argv[1:] or list(OPS)) if n in OPS]
print(json.dumps({n: timed(*OPS[n]) * scale.get(n, 1.0) for n in names}))
