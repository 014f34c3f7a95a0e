"""Cut the int8 calibration crops that ship in `src/esrgan/inference/calibration/` (run once; committed).

    .venv/bin/python scripts/make_calibration_set.py --images DIR

DIR holds scikit-image's sample photos (`skimage/data` inside its wheel: `pip download scikit-image
--no-deps` and unzip). Only the four colour photos that are public domain or CC0 are used; see the
folder's README.md for their provenance. Four 192 px crops per photo, at seeded random places that
are not flat (a flat crop teaches the quantiser nothing).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "esrgan" / "inference" / "calibration"
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")
SIDE, PER_PHOTO = 192, 4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=Path, required=True, help="scikit-image's data folder")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    for old in OUT.glob("*.png"):
        old.unlink()
    for name in PHOTOS:
        img = np.asarray(Image.open(args.images / name).convert("RGB"))
        h, w = img.shape[:2]
        kept = 0
        while kept < PER_PHOTO:
            top, left = int(rng.integers(0, h - SIDE + 1)), int(rng.integers(0, w - SIDE + 1))
            crop = img[top : top + SIDE, left : left + SIDE]
            if crop.astype(np.float32).std() < 20:  # mostly flat: sky, background
                continue
            stem = Path(name).stem
            Image.fromarray(crop).save(OUT / f"{stem}_{kept}.png", optimize=True)
            print(f"{stem}_{kept}.png: {name} at ({left}, {top})")
            kept += 1


if __name__ == "__main__":
    main()
