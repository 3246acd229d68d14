"""Write one greyscale image as TIFF files laid out the ways microscopes and their software write
them, with tifffile and imagecodecs (not hcs's writer), for hcs-vfs/tests/tiff_variants.rs.

    python scripts/make_tiff_variants.py OUT_DIR

The image is scikit-image's `camera` sample cut to 203 x 317 (odd sizes: partial strips and
tiles), scaled to the 16-bit range and given a smooth ramp, so every byte of a sample matters.
For each file the manifest (OUT_DIR/manifest.json) says what a reader must give:

- "pixels": the stored sample values, as the little-endian raw file `truth` holds them
  (`dtype` u8, u16 or f32; one plane per page), as tifffile reads them;
- "error": no image, but an error whose text contains every string of `error_contains`.

A "pixels" entry also lists the first page's ImageDescription tags as tifffile reads them
("descriptions", in file order).

Photometric "miniswhite" files are listed as pixels holding the stored values (tifffile,
ImageJ and Bio-Formats give the stored values and leave the display to the viewer).
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import tifffile
from skimage import data

HEIGHT, WIDTH = 203, 317


def base_u16() -> np.ndarray:
    cam = data.camera()[100 : 100 + HEIGHT, 50 : 50 + WIDTH].astype(np.float64)
    ramp = np.add.outer(np.arange(HEIGHT) * 3.0, np.arange(WIDTH) * 1.7)
    values = cam * 250.0 + ramp
    return np.clip(values, 0, 65535).astype(np.uint16)


def hostile_tile_width() -> bytes:
    """A classic little-endian TIFF: 16 x 16 u16, LZW, TileWidth 2^30, TileLength 16, one tile
    of three 9-bit codes (clear, 1, 2) and no end code."""
    codes = "".join(format(c, "09b") for c in (256, 1, 2))
    codes += "0" * (-len(codes) % 8)
    data = bytes(int(codes[i : i + 8], 2) for i in range(0, len(codes), 8))
    # (tag, type: 3 SHORT / 4 LONG, value); the tile offset is filled in below.
    entries = [(256, 4, 16), (257, 4, 16), (258, 3, 16), (259, 3, 5), (262, 3, 1), (277, 3, 1),
               (322, 4, 1 << 30), (323, 4, 16), (324, 4, None), (325, 4, len(data))]
    data_offset = 8 + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        value = data_offset if value is None else value
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, 1) + packed
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + data


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    u16 = base_u16()
    u8 = (u16 >> 8).astype(np.uint8)
    f32 = (u16.astype(np.float32) / 65535.0 - 0.25).astype(np.float32)
    stack = np.stack([u16, u16[::-1, :].copy(), (u16 // 3).astype(np.uint16)])
    manifest = []

    def pixels(name: str, array: np.ndarray, **kwargs) -> None:
        path = out / f"{name}.tif"
        tifffile.imwrite(path, array, **kwargs)
        # The truth is what tifffile reads back from the file (the stored values).
        back = tifffile.imread(path)
        assert np.array_equal(back, array), name
        pages = back if back.ndim == 3 else back[np.newaxis]
        truth = out / f"{name}.raw"
        pages.astype(pages.dtype.newbyteorder("<"), copy=False).tofile(truth)
        # Every ImageDescription of the first page, in order, as tifffile lists them (given a
        # description, tifffile writes it and then its own JSON: two tags 270).
        with tifffile.TiffFile(path) as tif:
            descriptions = [str(t.value) for t in tif.pages.first.tags.getall(270) or []]
        manifest.append(
            dict(
                file=path.name,
                expect="pixels",
                descriptions=descriptions,
                dtype={"uint8": "u8", "uint16": "u16", "float32": "f32"}[str(pages.dtype)],
                pages=int(pages.shape[0]),
                height=int(pages.shape[1]),
                width=int(pages.shape[2]),
                truth=truth.name,
                options={k: str(v) for k, v in kwargs.items()},
            )
        )

    def error(name: str, array: np.ndarray, contains: list, **kwargs) -> None:
        path = out / f"{name}.tif"
        tifffile.imwrite(path, array, **kwargs)
        manifest.append(
            dict(file=path.name, expect="error", error_contains=contains, options={k: str(v) for k, v in kwargs.items()})
        )

    # 16-bit, the microscopes' own layouts.
    pixels("u16_plain", u16)
    pixels("u16_big_endian", u16, byteorder=">")
    pixels("u16_row_strips", u16, rowsperstrip=1)
    pixels("u16_odd_strips", u16, rowsperstrip=7)
    pixels("u16_bigtiff", u16, bigtiff=True)
    pixels("u16_bigtiff_big_endian", u16, bigtiff=True, byteorder=">")
    pixels("u16_tiled", u16, tile=(64, 64))
    pixels("u16_tiled_big_endian_lzw_predictor", u16, tile=(32, 48), byteorder=">", compression="lzw", predictor=True)
    pixels("u16_lzw", u16, compression="lzw")
    pixels("u16_lzw_predictor", u16, compression="lzw", predictor=True)
    pixels("u16_zlib", u16, compression="zlib")
    pixels("u16_zlib_predictor", u16, compression="zlib", predictor=True)
    pixels("u16_deflate_legacy_code", u16, compression="deflate")
    pixels("u16_packbits", u16, compression="packbits")
    pixels("u16_zstd", u16, compression="zstd")
    pixels("u16_tiled_lzw", u16, tile=(32, 48), compression="lzw")
    pixels("u16_tiled_lzw_predictor", u16, tile=(32, 48), compression="lzw", predictor=True)
    pixels("u16_tiled_big_endian_lzw", u16, tile=(16, 16), byteorder=">", compression="lzw")
    pixels("u8_tiled_lzw_predictor", u8, tile=(32, 48), compression="lzw", predictor=True)
    pixels("u16_miniswhite", u16, photometric="miniswhite")
    pixels("u16_miniswhite_lzw", u16, photometric="miniswhite", compression="lzw")
    pixels("u16_stack_3_pages", stack, photometric="minisblack")
    pixels("u16_stack_3_pages_big_endian_zlib", stack, photometric="minisblack", byteorder=">", compression="zlib")
    pixels("u16_imagej_hyperstack", stack, imagej=True, metadata={"axes": "ZYX"})
    # MetaMorph's XML as a description (what ImageXpress writes), which tifffile follows with its
    # own JSON description; classic and BigTIFF, both byte orders.
    metamorph = '<MetaData><prop id="spatial-calibration-x" type="float" value="0.65"/></MetaData>'
    pixels("u16_described", u16, description=metamorph)
    pixels("u16_described_bigtiff_big_endian", u16, description=metamorph, bigtiff=True, byteorder=">")
    pixels("u16_described_short", u16, description="<a/>", bigtiff=True)
    # 8-bit and float.
    pixels("u8_plain", u8)
    pixels("u8_lzw_predictor", u8, compression="lzw", predictor=True)
    pixels("u8_miniswhite", u8, photometric="miniswhite")
    pixels("u8_miniswhite_big_endian_zlib", u8, photometric="miniswhite", byteorder=">", compression="zlib")
    pixels("f32_tiled_lzw", f32, tile=(32, 48), compression="lzw")
    pixels("f32_plain", f32)
    pixels("f32_big_endian", f32, byteorder=">")
    pixels("f32_zlib_float_predictor", f32, compression="zlib", predictor=3)
    pixels("f32_tiled_lzw_float_predictor", f32, tile=(32, 48), compression="lzw", predictor=3)
    pixels("f32_tiled_big_endian_lzw_float_predictor", f32, tile=(16, 32), byteorder=">", compression="lzw", predictor=3)
    # What hcs does not read must say so, naming what it found.
    error("i16_signed", (u16 // 2).astype(np.int16), ["i16"])
    error("u32", u16.astype(np.uint32), ["u32"])
    error("rgb_u8", np.stack([u8, u8, u8], axis=-1), ["RGB"], photometric="rgb")
    error("u16_lerc", u16, ["ompression"], compression="lerc")
    error("u16_jpeg2000", u16, ["ompression"], compression="jpeg2000")
    error("f32_miniswhite", f32, ["min-is-white"], photometric="miniswhite", compression="zlib")

    error("i16_tiled_lzw", (u16 // 2).astype(np.int16) - 3000, ["i16"], tile=(32, 48), compression="lzw")
    error("f32_tiled_lzw_miniswhite", f32, ["min-is-white"], tile=(32, 48), compression="lzw", photometric="miniswhite")
    # A hostile header: a 16 x 16 image in one tile 2^30 pixels wide, whose LZW data has no end
    # code; refused before anything is allocated for the tile.
    path = out / "hostile_tile_width.tif"
    path.write_bytes(hostile_tile_width())
    manifest.append(dict(file=path.name, expect="error", error_contains=["chunks for a 16 × 16 image"], options={}))

    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{len(manifest)} TIFF files in {out}")


if __name__ == "__main__":
    main()
