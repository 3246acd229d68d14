#!/usr/bin/env python3
"""Validate an OME-Zarr HCS plate and report its planes.

1. ome-zarr-models validation (warnings count as errors), as `ome-zarr-models validate` does;
2. completeness: every well, field and dataset the metadata lists exists on disk (ome-zarr-models
   alone skips missing ones);
3. read every plane back with zarr-python and print, as JSON, its dtype, shape and the SHA-256 of
   its little-endian bytes, keyed "row/col/field/t/c/z".

Exit status 1 with a message on any problem.

Usage: check_omezarr.py PLATE [--version 0.4|0.5]
"""

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import ome_zarr_models
import zarr
from ome_zarr_models.exceptions import ValidationWarning


def fail(msg: str) -> None:
    print(f"invalid: {msg}", file=sys.stderr)
    sys.exit(1)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("plate")
    ap.add_argument("--version", choices=["0.4", "0.5"])
    args = ap.parse_args()
    path = Path(args.plate)

    with warnings.catch_warnings():
        warnings.simplefilter("error", ValidationWarning)
        try:
            model = ome_zarr_models.open_ome_zarr(str(path), version=args.version)
        except Exception as e:  # noqa: BLE001 - report any validation failure
            fail(f"ome-zarr-models: {e}")
    if type(model).__name__ != "HCS":
        fail(f"not an HCS plate but {type(model).__name__}")

    fmt = 2 if args.version == "0.4" or (path / ".zattrs").exists() else 3
    root = zarr.open_group(str(path), mode="r", zarr_format=fmt)
    attrs = dict(root.attrs)
    plate = attrs.get("ome", attrs)["plate"]
    out = {"wells": [], "planes": {}}
    for well in plate["wells"]:
        wpath = well["path"]
        if wpath not in root:
            fail(f"well {wpath} listed but missing")
        wgroup = root[wpath]
        wattrs = dict(wgroup.attrs)
        images = wattrs.get("ome", wattrs)["well"]["images"]
        out["wells"].append(wpath)
        for image in images:
            ipath = image["path"]
            if ipath not in wgroup:
                fail(f"field {wpath}/{ipath} listed but missing")
            igroup = wgroup[ipath]
            iattrs = dict(igroup.attrs)
            ms = iattrs.get("ome", iattrs)["multiscales"][0]
            axes = [a["name"] for a in ms["axes"]]
            for ds in ms["datasets"]:
                if ds["path"] not in igroup:
                    fail(f"dataset {wpath}/{ipath}/{ds['path']} listed but missing")
            arr = np.asarray(igroup[ms["datasets"][0]["path"]][...])
            if arr.ndim == 4:
                arr = arr[np.newaxis]
            if axes[-4:] != ["c", "z", "y", "x"]:
                fail(f"unexpected axes {axes}")
            for t in range(arr.shape[0]):
                for c in range(arr.shape[1]):
                    for z in range(arr.shape[2]):
                        plane = np.ascontiguousarray(arr[t, c, z]).astype(arr.dtype.newbyteorder("<"))
                        key = f"{wpath}/{ipath}/{t}/{c}/{z}"
                        out["planes"][key] = {
                            "dtype": str(arr.dtype.name),
                            "shape": list(plane.shape),
                            "sha256": hashlib.sha256(plane.tobytes()).hexdigest(),
                        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
