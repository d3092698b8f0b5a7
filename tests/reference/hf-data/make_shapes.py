"""A Parquet image dataset big enough for a run: 48 PNGs of 16x16 in 4 classes, written by
`datasets` with an Image() column and a ClassLabel, as a Hugging Face user's file would be.

    python3 -m venv V && V/bin/pip install datasets pillow
    V/bin/python tests/reference/hf-data/make_shapes.py
"""
import io
import os
import random

import datasets
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(0)
SHAPES = ["vertical", "horizontal", "cross", "blank"]


def draw(shape):
    img = Image.new("RGB", (16, 16))
    px = img.load()
    for y in range(16):
        for x in range(16):
            on = (shape in ("vertical", "cross") and 6 <= x < 10) or (
                shape in ("horizontal", "cross") and 6 <= y < 10
            )
            v = 200 + rng.randrange(50) if on else rng.randrange(60)
            px[x, y] = (v, v // 2, 255 - v)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


labels = [i % 4 for i in range(48)]
rows = {"img": [draw(SHAPES[label]) for label in labels], "shape": labels}
features = datasets.Features({"img": datasets.Image(), "shape": datasets.ClassLabel(names=SHAPES)})
datasets.Dataset.from_dict(rows, features=features).to_parquet(os.path.join(here, "shapes.parquet"))
