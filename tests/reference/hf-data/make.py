"""Writes the Hugging Face `datasets` fixtures read by crates/w2s-data/tests/hf_input.rs.

Run: python3 -m venv V && V/bin/pip install datasets pillow && V/bin/python tests/reference/hf-data/make.py
(datasets 5.2.0, pyarrow 26.0.1 made the committed files).
"""
import os
import datasets

here = os.path.dirname(os.path.abspath(__file__))
features = datasets.Features({
    "sentence": datasets.Value("string"),
    "sentiment": datasets.ClassLabel(names=["neg", "pos"]),
    "qid": datasets.Value("int64"),
})
rows = {
    "sentence": ["good film", "bad film", "great plot", "awful acting", "fine", "terrible"],
    "sentiment": [1, 0, 1, 0, 1, 0],
    "qid": [7, 7, 8, 8, 9, 9],
}
ds = datasets.Dataset.from_dict(rows, features=features)
ds.to_parquet(os.path.join(here, "reviews.parquet"))
ds.save_to_disk(os.path.join(here, "reviews_saved"), num_shards=2)  # two .arrow files
bad = dict(rows, stars=[1, 0, 2, 0, 1, 0])  # row 3 has a label that is not 0/1
datasets.Dataset.from_dict(bad).to_parquet(os.path.join(here, "bad_label.parquet"))

# Images: a datasets Image() column ({bytes, path}) and a ClassLabel, as Parquet and save_to_disk.
# The PNGs are tiny (4x3) solid colours, one grey, so that decoding can be checked exactly.
import io
from PIL import Image as PILImage


def png(colour, mode="RGB"):
    buf = io.BytesIO()
    PILImage.new(mode, (4, 3), colour).save(buf, format="PNG")
    return buf.getvalue()


image_features = datasets.Features({
    "img": datasets.Image(),
    "kind": datasets.ClassLabel(names=["red", "green", "grey"]),
})
images = {
    "img": [{"bytes": png((255, 0, 0)), "path": None}, {"bytes": png((0, 255, 0)), "path": None},
            {"bytes": png(90, "L"), "path": None}],
    "kind": [0, 1, 2],
}
ids = datasets.Dataset.from_dict(images, features=image_features)
ids.to_parquet(os.path.join(here, "images.parquet"))
ids.save_to_disk(os.path.join(here, "images_saved"))
