#!/usr/bin/env python3
"""Open an OME-Zarr HCS plate the way users look at plates, with the real readers.

1. ome-zarr-py: `parse_url` + `Reader`, find the plate node, read a corner of every well from
   the stitched full-resolution level and the whole lowest-resolution level;
2. napari-ome-zarr: `napari_get_reader(path)` and the returned reader's layer data tuples
   (a pyramid of >= 3 levels with decreasing shapes, `scale`, `units`, channel names);
3. napari itself, headless (no Qt): `ViewerModel.open(path, plugin="napari-ome-zarr")`, which
   turns those tuples into layers exactly as `napari PLATE` does.

Both readers tile a plate from each well's *first* field, at the path, level paths, shape and
dtype of the first well's first field (wells sorted by path); a well that differs makes them fail
("Shapes do not align") or, worse, silently draw it black. The script checks this itself too.

With --expect-labels NAME, the plate's NGFF labels are checked too: every well's first field
lists NAME under labels/, with the image's levels, shapes and an integer dtype; ome-zarr-py opens
the label image (a node with the Label spec, pixels equal to the array); napari-ome-zarr returns
a labels layer and napari builds a Labels layer from it.

Prints one `ok:` line per check; exits 1 with `FAIL:` and what was wrong on the first failure.
Environment: scripts/requirements-viewers.txt.

Usage: check_viewers.py PLATE.ome.zarr [--expect-channels A,B] [--expect-pixel-size-um X]
                        [--expect-labels NAME]
"""

import argparse
import contextlib
import io
import logging
import math
import sys
import warnings

import numpy as np
import zarr

MIN_LEVELS = 3  # napari shows a whole plate only through a pyramid
CORNER = 64  # pixels per side read from each well at full resolution


def fail(msg: str) -> None:
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def ok(msg: str) -> None:
    print(f"ok: {msg}", flush=True)


@contextlib.contextmanager
def quiet():
    """The readers print debug lines and a progress bar; keep them out of our report."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def ome(group: zarr.Group) -> dict:
    """NGFF attributes: under "ome" in 0.5 (zarr v3), at the top level in 0.4."""
    attrs = group.attrs.asdict()
    return attrs.get("ome", attrs)


def layout_problems(path: str) -> list[str]:
    """What breaks the readers' tiling assumptions (see the module docstring), read with zarr."""
    try:
        root = zarr.open_group(path, mode="r")
        plate = ome(root)["plate"]
        rows = [r["name"] for r in plate["rows"]]
        cols = [c["name"] for c in plate["columns"]]
        wells = sorted(w["path"] for w in plate["wells"])
        if not wells:
            return ["the plate lists no wells"]
        first_well = wells[0]
        field = ome(root[first_well])["well"]["images"][0]["path"]
        ref = ome(root[f"{first_well}/{field}"])["multiscales"][0]
        levels = [d["path"] for d in ref["datasets"]]
        ref_arrays = [root[f"{first_well}/{field}/{lv}"] for lv in levels]
    except Exception as e:  # noqa: BLE001 - any of these is a plate the readers cannot open
        return [f"cannot read the first well's first field metadata: {type(e).__name__}: {e}"]

    problems = []
    axes = [a["name"] if isinstance(a, dict) else a for a in ref.get("axes", [])]
    if axes[-2:] != ["y", "x"]:
        problems.append(f"axes {axes} do not end in y, x: the readers tile along the last two")
    for w in wells:
        parts = w.split("/")
        if len(parts) != 2 or parts[0] not in rows or parts[1] not in cols:
            problems.append(f"well path {w!r} is not ROW/COLUMN from the plate's rows/columns "
                            "names: the readers would draw it as an empty well")
            continue
        try:
            f = ome(root[w])["well"]["images"][0]["path"]
            if f != field:
                problems.append(f"well {w}: first field is {f!r}, but the readers open field "
                                f"{field!r} (that of well {first_well}) in every well")
                continue
            ms = ome(root[f"{w}/{f}"])["multiscales"][0]
            if [d["path"] for d in ms["datasets"]] != levels:
                problems.append(f"well {w}: level paths {[d['path'] for d in ms['datasets']]} "
                                f"differ from {levels} of well {first_well}")
                continue
            for lv, ref_arr in zip(levels, ref_arrays):
                arr = root[f"{w}/{f}/{lv}"]
                if arr.shape != ref_arr.shape or arr.dtype != ref_arr.dtype:
                    problems.append(
                        f"well {w} field {f} level {lv}: shape {arr.shape} {arr.dtype} differs "
                        f"from {ref_arr.shape} {ref_arr.dtype} of well {first_well}; both readers "
                        "tile every well with the first well's field shape")
                    break
        except Exception as e:  # noqa: BLE001
            problems.append(f"well {w}: cannot read field {field!r}: {type(e).__name__}: {e}")
    return problems


def label_problems(path: str, name: str) -> list[str]:
    """Where the plate's label image `name` breaks NGFF or the readers' plate tiling."""
    root = zarr.open_group(path, mode="r")
    problems = []
    for w in sorted(w["path"] for w in ome(root)["plate"]["wells"]):
        field = ome(root[w])["well"]["images"][0]["path"]
        image = f"{w}/{field}"
        try:
            listed = ome(root[f"{image}/labels"]).get("labels", [])
            if name not in listed:
                problems.append(f"{image}/labels lists {listed}, not {name!r}")
                continue
            label = ome(root[f"{image}/labels/{name}"])
            if "image-label" not in label:
                problems.append(f"{image}/labels/{name} has no image-label metadata")
            img_levels = [d["path"] for d in ome(root[image])["multiscales"][0]["datasets"]]
            lab_levels = [d["path"] for d in label["multiscales"][0]["datasets"]]
            if len(lab_levels) != len(img_levels):
                problems.append(f"{image}: {len(lab_levels)} label levels for {len(img_levels)} image levels")
            for li, ii in zip(lab_levels, img_levels):
                la, ia = root[f"{image}/labels/{name}/{li}"], root[f"{image}/{ii}"]
                if la.dtype.kind not in "ui":
                    problems.append(f"{image}/labels/{name}/{li}: dtype {la.dtype} is not an integer")
                if la.shape[-2:] != ia.shape[-2:]:
                    problems.append(f"{image}/labels/{name}/{li}: y/x {la.shape[-2:]} != image {ia.shape[-2:]}")
        except Exception as e:  # noqa: BLE001
            problems.append(f"{image}: cannot read labels/{name}: {type(e).__name__}: {e}")
    return problems


def check_labels(path: str, name: str, layer_data, layers) -> None:
    """NGFF labels of every well, read by both readers (see the module docstring)."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    problems = label_problems(path, name)
    if problems:
        fail("labels: " + "; ".join(problems))
    root = zarr.open_group(path, mode="r")
    wells = sorted(w["path"] for w in ome(root)["plate"]["wells"])
    image = f"{wells[0]}/{ome(root[wells[0]])['well']['images'][0]['path']}"
    label_path = f"{path}/{image}/labels/{name}"
    try:
        with quiet():
            nodes = list(Reader(parse_url(label_path))())
    except Exception as e:  # noqa: BLE001
        fail(f"ome-zarr-py could not open {label_path}: {type(e).__name__}: {e}")
    node = next((n for n in nodes if n.load(Label) is not None), None)
    if node is None:
        fail(f"ome-zarr-py: {label_path} is not a label image (nodes {nodes})")
    level0 = np.asarray(node.data[0])
    want = root[f"{image}/labels/{name}/0"][...]
    if not np.array_equal(level0, want) or level0.max() == 0:
        fail(f"ome-zarr-py: label level 0 of {image} differs from the array or holds no label")
    ok(f"labels {name!r} in every well ({len(wells)}); ome-zarr-py opened {image}/labels/{name}: "
       f"{len(node.data)} levels, {level0.dtype}, {len(np.unique(level0)) - 1} labels in level 0")
    kinds = [kind for *_, kind in layer_data]
    if "labels" not in kinds:
        fail(f"napari-ome-zarr returned no labels layer for the plate (layers {kinds})")
    lab = next(d for d, _, kind in layer_data if kind == "labels")
    img = next(d for d, _, kind in layer_data if kind == "image")
    if len(lab) != len(img) or lab[0].shape[-2:] != img[0].shape[-2:]:
        fail(f"napari-ome-zarr: labels layer {[a.shape for a in lab]} does not match the image "
             f"layer {[a.shape for a in img]}")
    if np.asarray(lab[-1]).max() == 0:
        fail("napari-ome-zarr: the plate's labels layer holds no label at its lowest level")
    if not any(type(ly).__name__ == "Labels" for ly in layers):
        fail(f"napari built no Labels layer (layers {[type(ly).__name__ for ly in layers]})")
    ok(f"napari-ome-zarr: labels layer over the plate, {len(lab)} levels {tuple(lab[0].shape)}; "
       "napari built a Labels layer")


def scale_yx(transforms: list[dict]) -> list[float]:
    """y/x of the first "scale" coordinateTransformation (NGFF puts it first)."""
    return next(t["scale"][-2:] for t in transforms if t["type"] == "scale")


def same_name(got: str, want: str) -> bool:
    # napari-ome-zarr names a channel layer "<multiscales name>: <omero label>"
    return got == want or got.endswith(f": {want}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("plate")
    ap.add_argument("--expect-channels", help="comma-separated omero channel labels, in order")
    ap.add_argument("--expect-pixel-size-um", type=float, help="y/x pixel size in micrometer")
    ap.add_argument("--expect-labels", help="name of an NGFF label image every well must have")
    args = ap.parse_args()
    path = args.plate.rstrip("/")
    want_channels = args.expect_channels.split(",") if args.expect_channels else None
    want_px = args.expect_pixel_size_um
    logging.getLogger("ome_zarr").setLevel(logging.ERROR)  # not its "version mismatch" notes

    # Imported here so that a broken environment fails with a message, not a traceback.
    try:
        with quiet():
            import npe2
            from napari.components import ViewerModel
            from napari_ome_zarr import napari_get_reader
            from ome_zarr.io import parse_url
            from ome_zarr.reader import Plate, Reader
    except ImportError as e:
        fail(f"{e}; install scripts/requirements-viewers.txt")

    problems = layout_problems(path)
    hint = "".join(f"\n  cause: {p}" for p in problems)

    # --- (a) ome-zarr-py -------------------------------------------------------------------
    try:
        with quiet():
            loc = parse_url(path)
            nodes = list(Reader(loc)()) if loc is not None else []
    except Exception as e:  # noqa: BLE001
        fail(f"ome-zarr-py Reader could not open the plate: {type(e).__name__}: {e}{hint}")
    if loc is None:
        fail(f"ome-zarr-py: {path} is not a zarr group")
    node = next((n for n in nodes if n.load(Plate) is not None), None)
    if node is None:
        fail(f"ome-zarr-py found no plate in {path} (nodes: {nodes})")
    if problems:
        fail("plate layout breaks the readers' assumptions:" + hint)
    plate = node.load(Plate)
    wells = plate.well_paths
    ok(f"ome-zarr-py opened plate {plate.plate_data.get('name', '')!r} "
       f"(NGFF {loc.version}, zarr v{loc.fmt.zarr_format}): {plate.row_count} rows x "
       f"{plate.column_count} columns, {len(wells)} wells [{', '.join(wells)}]")

    levels = node.data
    meta = node.metadata
    axes = [a["name"] for a in meta["axes"]]
    units = [a.get("unit") for a in meta["axes"]][-2:]
    root = zarr.open_group(path, mode="r")
    field0 = root[f"{wells[0]}/{plate.first_field_path}/{plate.img_paths[0]}"]
    fy, fx = field0.shape[-2:]
    ok(f"field {plate.first_field_path!r} of every well: {dict(zip(axes, field0.shape))} "
       f"{field0.dtype}, {len(levels)} levels {plate.img_paths} -> plate shapes "
       f"{[tuple(d.shape) for d in levels]}")

    # Full resolution: each well's corner, read through the stitched plate, must be the well's
    # own pixels (a reader that cannot load a well silently draws zeros there).
    try:
        for w in wells:
            r, c = plate.row_names.index(w.split("/")[0]), plate.col_names.index(w.split("/")[1])
            ny, nx = min(fy, CORNER), min(fx, CORNER)
            got = levels[0][..., r * fy:r * fy + ny, c * fx:c * fx + nx].compute()
            want = root[f"{w}/{plate.first_field_path}/{plate.img_paths[0]}"][..., :ny, :nx]
            if not np.array_equal(got, want):
                fail(f"ome-zarr-py: well {w} at level 0 does not show the well's own pixels")
        with quiet():
            lowest = levels[-1].compute()
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001
        fail(f"ome-zarr-py could not load the plate's pixels: {type(e).__name__}: {e}")
    ok(f"ome-zarr-py read a {ny}x{nx} corner of each well at level 0 (matches the well's array) "
       f"and the whole lowest level {lowest.shape} (values {lowest.min()}..{lowest.max()})")

    transforms = meta.get("coordinateTransformations")
    if not transforms:
        fail("ome-zarr-py: the first field has no coordinateTransformations (no pixel size)")
    sy, sx = scale_yx(transforms[0])
    names = meta.get("channel_names")
    colors = ["".join(f"{round(v * 255):02X}" for v in cm[1]) for cm in meta.get("colormap") or []]
    ok(f"ome-zarr-py scale y/x {sy}/{sx} {units[0]}/{units[1]}; channels {names} colours {colors}")
    if want_px is not None:
        if not (math.isclose(sy, want_px, rel_tol=1e-4) and math.isclose(sx, want_px, rel_tol=1e-4)):
            fail(f"ome-zarr-py: level-0 y/x scale {sy}/{sx}, expected {want_px}")
        if units != ["micrometer", "micrometer"]:
            fail(f"ome-zarr-py: y/x axes units are {units}, expected micrometer")
    if want_channels is not None and names != want_channels:
        fail(f"ome-zarr-py: omero channel labels {names}, expected {want_channels}")

    # --- (b) napari-ome-zarr's reader function --------------------------------------------
    try:
        with quiet():
            reader = napari_get_reader(path)
            layer_data = reader(path) if reader is not None else None
    except Exception as e:  # noqa: BLE001
        fail(f"napari-ome-zarr reader failed: {type(e).__name__}: {e}")
    if not layer_data:
        fail(f"napari-ome-zarr returned no reader / no layers for {path}")
    images = [(d, m) for d, m, kind in layer_data if kind == "image"]
    n_labels = sum(kind == "labels" for _, _, kind in layer_data)
    if not images:
        fail(f"napari-ome-zarr returned no image layer (got {[k for *_, k in layer_data]})")
    data, m = images[0]
    shapes = [tuple(a.shape) for a in data] if isinstance(data, list) else [tuple(data.shape)]
    if len(shapes) < MIN_LEVELS:
        fail(f"napari-ome-zarr: image layer has {len(shapes)} pyramid level(s), need >= "
             f"{MIN_LEVELS}: without a pyramid napari must read every well's full-resolution "
             "field to show the plate (write more multiscales datasets)")
    for i in range(1, len(shapes)):
        a, b = shapes[i - 1], shapes[i]
        if len(a) != len(b) or any(y > x for x, y in zip(a, b)) or b[-2] >= a[-2] \
                or b[-1] >= a[-1]:
            fail(f"napari-ome-zarr: pyramid shapes do not decrease: {shapes}")
    if shapes[0] != tuple(levels[0].shape):
        fail(f"napari-ome-zarr level 0 {shapes[0]} != ome-zarr-py level 0 {levels[0].shape}")
    try:
        if not np.array_equal(np.asarray(data[-1]), lowest):
            fail("napari-ome-zarr and ome-zarr-py disagree on the lowest level's pixels")
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001
        fail(f"napari-ome-zarr could not load the lowest level: {type(e).__name__}: {e}")
    scale, nunits, nnames = m.get("scale"), m.get("units"), m.get("name")
    if not scale:
        fail("napari-ome-zarr: layer metadata has no scale")
    if want_px is not None:
        if not all(math.isclose(s, want_px, rel_tol=1e-4) for s in scale[-2:]):
            fail(f"napari-ome-zarr: layer scale {scale}, expected y/x {want_px}")
        if not nunits or list(nunits[-2:]) != ["micrometer", "micrometer"]:
            fail(f"napari-ome-zarr: layer units {nunits}, expected y/x micrometer")
    if want_channels is not None:
        got = nnames if isinstance(nnames, list) else [nnames]
        if len(want_channels) > 1 and m.get("channel_axis") is None:
            fail("napari-ome-zarr: no channel_axis, so the channels are not split into layers")
        if len(got) != len(want_channels) or not all(map(same_name, got, want_channels)):
            fail(f"napari-ome-zarr: layer names {got}, expected channels {want_channels}")
    ok(f"napari-ome-zarr: {len(images)} image + {n_labels} labels layer(s); {len(shapes)} levels "
       f"{shapes[0]} .. {shapes[-1]}; scale {scale}; units {nunits}; "
       f"channel_axis {m.get('channel_axis')}; names {nnames}")

    # --- (c) napari's own layer construction, headless --------------------------------------
    try:
        with quiet():
            npe2.PluginManager.instance().discover()  # register napari-ome-zarr's manifest
            layers = ViewerModel().open(path, plugin="napari-ome-zarr")
    except Exception as e:  # noqa: BLE001
        fail(f"napari could not add the plate's layers: {type(e).__name__}: {e}")
    bad = [ly.name for ly in layers if type(ly).__name__ == "Image" and not ly.multiscale]
    if bad:
        fail(f"napari: image layers {bad} are not multiscale")
    ok(f"napari ViewerModel.open: {len(layers)} layer(s) "
       + ", ".join(f"{ly.name!r} ({type(ly).__name__})" for ly in layers))
    if args.expect_labels:
        check_labels(path, args.expect_labels, layer_data, layers)
    ok("all viewer checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
