#!/usr/bin/env python3
"""Write the small OME-Zarr HCS plates under tests/fixtures/foreign/ with ome-zarr-py's writer.

These fixtures let hcs's reader be tested against plates that hcs did not write: every group,
array and attribute comes from ome-zarr-py (`write_plate_metadata`, `write_well_metadata`,
`write_image` with a 2-level pyramid) and zarr-python, with their default compressor (zstd), and
two smaller plates compressed with blosc, as zarr-python 2, bioformats2raw and older ome-zarr-py
write them.

Needs the pinned packages of scripts/requirements-viewers.txt (ome-zarr==0.18.0, zarr==3.1.6,
numpy==2.2.6), e.g.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install -r scripts/requirements-viewers.txt
    /tmp/venv/bin/python scripts/make_foreign_plates.py            # writes tests/fixtures/foreign/
    /tmp/venv/bin/python scripts/make_foreign_plates.py --only blosc_lz4_v0.4.ome.zarr   # just that one

Plates written (each 48x64 uint16 fields, pixel size 0.65 um):
  plate_v0.5.ome.zarr   NGFF 0.5 on Zarr v3, wells A/1 and B/3, 2 fields, axes c,z,y,x,
                        channels DAPI and GFP, 2 z-planes, scale in micrometer
  plate_v0.4.ome.zarr   NGFF 0.4 on Zarr v2, the same layout
  tczyx_v0.5.ome.zarr   NGFF 0.5, one well (B/2), one field, axes t,c,z,y,x with 2 time points,
                        scale in nanometer (650 nm)
  blosc_lz4_v0.4.ome.zarr   NGFF 0.4 on Zarr v2, compressor numcodecs.Blosc(cname="lz4",
                        shuffle=SHUFFLE), wells A/2 and C/4, one field, axes c,z,y,x, channels
                        DAPI and GFP, 1 z-plane, 12x20 fields in 8x16 chunks, one level (s0)
  blosc_zstd_v0.5.ome.zarr  NGFF 0.5 on Zarr v3, the `blosc` codec (cname zstd, bitshuffle),
                        otherwise the same as blosc_lz4_v0.4

Every sample is `value(row, col, field, t, c, z, y, x)` below; the Rust tests
(hcs-core/plate/tests/foreign_omezarr.rs) compute the same formula. Change both together.
"""
import argparse
import pathlib
import shutil

import numpy as np
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.writer import write_image, write_plate_metadata, write_well_metadata

HEIGHT, WIDTH = 48, 64
CHANNELS = ["DAPI", "GFP"]


def value(row, col, field, t, c, z, y, x):
    """The sample at these 0-based indices (row: 0 = A; col: the column number)."""
    return (row * 4099 + col * 1031 + field * 521 + t * 211 + c * 97 + z * 31 + y * 67 + x * 3) % 65536


def omero():
    colors = ["0000FF", "00FF00"]
    return {
        "channels": [
            {"label": n, "color": colors[i], "active": True,
             "window": {"min": 0, "max": 65535, "start": 0, "end": 12000}}
            for i, n in enumerate(CHANNELS)
        ],
        "rdefs": {"model": "color"},
    }


def field_data(row, col, field, timepoints, z_planes, height=HEIGHT, width=WIDTH):
    t, c, z, y, x = np.meshgrid(
        np.arange(timepoints), np.arange(len(CHANNELS)), np.arange(z_planes),
        np.arange(height), np.arange(width), indexing="ij")
    return value(row, col, field, t, c, z, y, x).astype(np.uint16)


def write_plate(out, fmt, wells, fields, timepoints, unit, pixel, z_planes=2, height=HEIGHT, width=WIDTH,
                chunks_yx=(32, 64), scale_factors=(2,), compressor=None):
    shutil.rmtree(out, ignore_errors=True)
    root = zarr.open_group(str(out), mode="w", zarr_format=fmt.zarr_format)
    # The plate lists more rows and columns than hold wells, as real plates do.
    rows, cols = ["A", "B", "C"], ["1", "2", "3", "4"]
    write_plate_metadata(root, rows, cols, wells, fmt=fmt, name=out.name.removesuffix(".ome.zarr"))
    axes = (["t"] if timepoints > 1 else []) + ["c", "z", "y", "x"]
    for w in wells:
        r, c = w.split("/")
        well = root.require_group(r).require_group(c)
        write_well_metadata(well, [{"path": str(f)} for f in range(fields)], fmt=fmt)
        for f in range(fields):
            data = field_data(rows.index(r), int(c), f, timepoints, z_planes, height, width)
            if timepoints == 1:
                data = data[0]
            chunks = ((1,) if timepoints > 1 else ()) + (2, 2) + chunks_yx  # partial chunks in y
            storage = {"chunks": chunks}
            if compressor is not None:
                storage["compressor"] = compressor
            write_image(data, well.require_group(str(f)), fmt=fmt, axes=axes,
                        scale={"z": 2.0 * pixel / 0.65, "y": pixel, "x": pixel},
                        axes_units={a: unit for a in ("z", "y", "x")},
                        scale_factors=scale_factors, name=f"field {f}",
                        storage_options=storage, omero=omero())
    print("wrote", out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = pathlib.Path(__file__).resolve().parent.parent
    ap.add_argument("--out", type=pathlib.Path, default=here / "tests" / "fixtures" / "foreign")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="write only these plates (by directory name)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    # Small blosc plates: 12x20 fields in 8x16 chunks (partial in y and x), one level, one z-plane.
    small = dict(z_planes=1, height=12, width=20, chunks_yx=(8, 16), scale_factors=())
    plates = {
        "plate_v0.5.ome.zarr": (FormatV05(), ["A/1", "B/3"], 2, 1, "micrometer", 0.65, {}),
        "plate_v0.4.ome.zarr": (FormatV04(), ["A/1", "B/3"], 2, 1, "micrometer", 0.65, {}),
        "tczyx_v0.5.ome.zarr": (FormatV05(), ["B/2"], 1, 2, "nanometer", 650.0, {}),
        # What zarr-python 2 / bioformats2raw write: {"id": "blosc", "cname": "lz4", "shuffle": 1, ...}
        "blosc_lz4_v0.4.ome.zarr": (FormatV04(), ["A/2", "C/4"], 1, 1, "micrometer", 0.65,
                                    dict(small, compressor=Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE))),
        # The Zarr v3 `blosc` codec; zarr-python fills in typesize (2) from the uint16 data type.
        "blosc_zstd_v0.5.ome.zarr": (FormatV05(), ["A/2", "C/4"], 1, 1, "micrometer", 0.65,
                                     dict(small, compressor=BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle"))),
    }
    unknown = set(a.only or []) - plates.keys()
    if unknown:
        ap.error(f"unknown plate(s): {sorted(unknown)}; known: {sorted(plates)}")
    for name, (fmt, wells, fields, timepoints, unit, pixel, extra) in plates.items():
        if a.only is None or name in a.only:
            write_plate(a.out / name, fmt, wells, fields, timepoints, unit, pixel, **extra)


if __name__ == "__main__":
    main()
