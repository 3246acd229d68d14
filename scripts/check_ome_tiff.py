#!/usr/bin/env python3
"""Read every TIFF an hcs run wrote under a folder with tifffile, as a user would, and check that
each is an OME-TIFF whose OME-XML carries the calibration, the channel name and, where hcs
knows it, the plane's position (PositionX/Y in µm or pixels), and TIFF resolution tags that
agree with the pixel size (pixels per centimetre) or say no unit when there is none.

Prints a JSON summary on stdout ({"files": N, "pixel_size_um": [...], "channels": {...},
"positions": [[y, x, unit], ...]});
exits 1 with the first problem on stderr.

Usage: check_ome_tiff.py FOLDER [--expect-pixel-size-um X] [--expect-channels A,B]
"""

import argparse
import json
import math
import sys
from pathlib import Path

import tifffile


def fail(msg: str) -> None:
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--expect-pixel-size-um", type=float)
    ap.add_argument("--expect-channels")
    args = ap.parse_args()
    root = Path(args.folder)
    # Hidden folders (a run's .hcs bookkeeping, partial writes) are not outputs.
    files = sorted(p for p in root.rglob("*.tif") if not any(s.startswith(".") for s in p.relative_to(root).parts))
    if not files:
        fail(f"no .tif files under {args.folder}")
    sizes, channels, positions = set(), {}, set()
    for path in files:
        with tifffile.TiffFile(path) as tif:
            if not tif.is_ome:
                fail(f"{path}: not an OME-TIFF (tifffile finds no OME-XML)")
            ome = tifffile.xml2dict(tif.ome_metadata)["OME"]
            pixels = ome["Image"]["Pixels"]
            data = tif.asarray()
            if data.shape != (pixels["SizeY"], pixels["SizeX"]):
                fail(f"{path}: pixels {data.shape}, OME-XML says {pixels['SizeY']} x {pixels['SizeX']}")
            if "PhysicalSizeX" in pixels:
                if pixels.get("PhysicalSizeXUnit") != "\u00b5m" or pixels.get("PhysicalSizeY") != pixels["PhysicalSizeX"]:
                    fail(f"{path}: calibration {pixels}")
                sizes.add(pixels["PhysicalSizeX"])
            else:
                sizes.add(None)
            # The TIFF's own resolution tags say the same as the OME-XML, for readers that
            # ignore OME-XML (ImageJ's plain TIFF opener, tifffile's `resolution`).
            page = tif.pages.first
            unit, (rx, ry) = page.resolutionunit, page.resolution
            if "PhysicalSizeX" in pixels:
                um = float(pixels["PhysicalSizeX"])
                if unit != tifffile.RESUNIT.CENTIMETER or rx != ry or abs(1e4 / rx - um) > um * 1e-6:
                    fail(f"{path}: resolution {rx} x {ry} per {unit!r}, OME-XML says {um} µm")
            elif unit != tifffile.RESUNIT.NONE:
                fail(f"{path}: resolution unit {unit!r} with no pixel size in the OME-XML")
            plane = pixels.get("Plane", {})
            if "PositionX" in plane or "PositionY" in plane:
                unit = plane.get("PositionXUnit")
                if unit not in ("\u00b5m", "pixel") or plane.get("PositionYUnit") != unit:
                    fail(f"{path}: plane position units {plane}")
                y, x = float(plane["PositionY"]), float(plane["PositionX"])
                if not (math.isfinite(y) and math.isfinite(x)):
                    fail(f"{path}: plane position {plane}")
                positions.add((y, x, unit))
            name = pixels["Channel"]["Name"]
            channels[name] = channels.get(name, 0) + 1
            values = ome["StructuredAnnotations"]["MapAnnotation"]["Value"]["M"]
            keys = {m["K"] for m in values}
            if keys != {"well", "site", "channel", "z", "timepoint"}:
                fail(f"{path}: plane annotation keys {keys}")
    if args.expect_pixel_size_um is not None and sizes != {args.expect_pixel_size_um}:
        fail(f"pixel sizes {sizes}, expected {args.expect_pixel_size_um} µm in every file")
    if args.expect_channels and set(channels) != set(args.expect_channels.split(",")):
        fail(f"channels {sorted(channels)}, expected {args.expect_channels}")
    summary = {
        "files": len(files),
        "pixel_size_um": sorted(sizes, key=str),
        "channels": channels,
        "positions": [list(p) for p in sorted(positions)],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
