"""Real images for plates cut by `hcs synth --source-image` (tests/fixtures/real/).

Grayscale, 8-bit, Deflate TIFFs made from scikit-image's bundled sample images (pinned in
scripts/requirements.txt), so stitching is tested on textures no one here drew:
- ihc.tif: immunohistochemistry of a tissue section, 512 x 512 (haematoxylin channel,
  `skimage.color.rgb2hed`): dense structure. skimage.data.immunohistochemistry, public domain.
- hubble.tif: the Hubble eXtreme Deep Field, 872 x 1000 (luminance): sparse bright points on a
  dark background, like sparse nuclei. skimage.data.hubble_deep_field, NASA, public domain.
Run: .venv-py/bin/python scripts/make_real_images.py
"""
from pathlib import Path

import numpy as np
import tifffile
from skimage import color, data, exposure

out = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "real"
out.mkdir(parents=True, exist_ok=True)


def to_u8(img):
    img = exposure.rescale_intensity(img.astype(np.float64), out_range=(0.0, 255.0))
    return np.round(img).astype(np.uint8)


hed = color.rgb2hed(data.immunohistochemistry())
tifffile.imwrite(out / "ihc.tif", to_u8(hed[..., 0]), compression="zlib")
tifffile.imwrite(out / "hubble.tif", to_u8(color.rgb2gray(data.hubble_deep_field())), compression="zlib")
for f in sorted(out.glob("*.tif")):
    a = tifffile.imread(f)
    print(f"{f.name}: {a.shape} {a.dtype}, {f.stat().st_size} bytes")
