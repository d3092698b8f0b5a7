#!/usr/bin/env python3
"""Tiny random-initialised Hugging Face vision models, one or more per architecture w2s reads,
with the pooled features `transformers` itself computes for a few images.

Each fixture is a folder under tests/reference/vision/NAME/ as `save_pretrained` writes it
(config.json, model.safetensors), plus preprocessor_config.json, a few PNG images (written here)
and reference.json:
  images: the PNG file names;
  pixel_values: the processor's output summed per image (checks resize/crop/rescale/normalise);
  pooled: the model's pooled features in float32 for each image (ViT and DINOv2: the CLS token
    after the final layer norm; ResNet and ConvNeXt: pooler_output, flattened).

Weights are re-drawn with a large spread (not the tiny HF init) and batch-norm statistics are
set to non-trivial values, so that every tensor visibly changes the output. The fixtures cover:
- every architecture with resizing and cropping off (images come at the input size), the form
  the parity check uses;
- a ViT and a ResNet with the processor resizing and cropping (bilinear/bicubic), whose
  pixel values w2s matches only to within resampling rounding;
- a DINOv2 whose images are smaller than its position table, so the table is interpolated
  (bicubic), as a real DINOv2 (image_size 518, crop 224) always is;
- a basic-block ResNet and a bottleneck one, a ConvNeXt without layer scale;
- CLIP's vision tower alone (CLIPVisionModel, quick-GELU) and inside a whole CLIPModel (its
  config nests vision_config; the processor resizes and crops, as CLIP's does).

Not run in CI: its output is committed (a few hundred KB in all).
Set up: python3 -m venv V && V/bin/pip install torch transformers pillow
Run:    V/bin/python tests/reference/make_vision_fixtures.py [NAME ...]   (all when none named)
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
import transformers as tf
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vision")
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def images(seed, height, width, count=3):
    """Noise plus smooth gradients, so both high and low frequencies matter."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        y, x = np.mgrid[0:height, 0:width]
        base = np.stack(
            [
                127 + 120 * np.sin(x / (3 + i) + c) * np.cos(y / (4 + c))
                for c in range(3)
            ],
            axis=-1,
        )
        noise = rng.normal(0, 40, size=(height, width, 3))
        out.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    # one grey image: the reader must turn it into RGB as transformers does
    out[-1] = out[-1].mean(axis=-1).astype(np.uint8)
    return out


def redraw(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name or "layernorm" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=g) / max(fan_in, 1) ** 0.5)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.2 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))


def processor_config(kind, resize, size, crop):
    """A preprocessor_config.json of the processor class the architecture ships with."""
    if kind == "clip":
        cfg = {
            "image_processor_type": "CLIPImageProcessor",
            "do_resize": resize,
            "size": {"shortest_edge": size},
            "resample": 3,
            "do_center_crop": crop is not None,
            "crop_size": {"height": crop or size, "width": crop or size},
            "do_convert_rgb": True,
        }
    elif kind in ("vit",):
        cfg = {
            "image_processor_type": "ViTImageProcessor",
            "do_resize": resize,
            "size": {"height": size, "width": size},
            "resample": 2,
        }
    elif kind == "dinov2":
        cfg = {
            "image_processor_type": "BitImageProcessor",
            "do_resize": resize,
            "size": {"shortest_edge": size},
            "resample": 3,
            "do_center_crop": crop is not None,
            "crop_size": {"height": crop or size, "width": crop or size},
            "do_convert_rgb": True,
        }
    elif kind == "resnet":
        cfg = {
            "image_processor_type": "ConvNextImageProcessor",
            "do_resize": resize,
            "size": {"shortest_edge": size},
            "crop_pct": 0.875,
            "resample": 3,
        }
    else:  # convnext
        cfg = {
            "image_processor_type": "ConvNextImageProcessor",
            "do_resize": resize,
            "size": {"shortest_edge": size},
            "crop_pct": 0.875,
            "resample": 3,
        }
    cfg.update(
        {
            "do_rescale": True,
            "rescale_factor": 1 / 255,
            "do_normalize": True,
            "image_mean": MEAN,
            "image_std": STD,
        }
    )
    return cfg


def fixture(name, kind, config, model_class, proc, image_hw, seed):
    if len(sys.argv) > 1 and name not in sys.argv[1:]:
        return
    out = os.path.join(OUT, name)
    shutil.rmtree(out, ignore_errors=True)
    torch.manual_seed(seed)
    model = model_class(config).eval()
    redraw(model, seed)
    model.save_pretrained(out)
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(proc, f, indent=2)
    processor = tf.AutoImageProcessor.from_pretrained(out, backend="pil")
    names, sums, pooled = [], [], []
    for i, arr in enumerate(images(seed, *image_hw)):
        file = f"image{i}.png"
        Image.fromarray(arr).save(os.path.join(out, file))
        names.append(file)
        img = Image.open(os.path.join(out, file))
        if img.mode != "RGB":  # what w2s does for every image (ImageFolder's loader does too)
            img = img.convert("RGB")
        pv = processor(images=img, return_tensors="pt")["pixel_values"]
        sums.append(pv.double().sum().item())
        with torch.no_grad():
            if kind == "clip":
                # CLIPModel holds the tower as vision_model; transformers 5's CLIPVisionModel is
                # the tower itself.
                tower = getattr(model, "vision_model", model)
                o = tower(pixel_values=pv)
            else:
                o = model.base_model(pixel_values=pv)
        if kind in ("vit", "dinov2"):
            p = o.last_hidden_state[:, 0]
        elif kind == "clip":
            p = o.pooler_output
        else:
            p = o.pooler_output.flatten(1)
        pooled.append([float(x) for x in p[0]])
    ref = {
        "images": names,
        "pixel_values_shape": list(pv.shape[1:]),
        "pixel_values_sum": sums,
        "pooled": pooled,
        "exact_pixels": not proc["do_resize"],
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f)
    print(name, list(pv.shape), len(pooled[0]))


def main():
    os.makedirs(OUT, exist_ok=True)
    vit = tf.ViTConfig(
        hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
        image_size=32, patch_size=8, hidden_act="gelu",
    )
    fixture("vit", "vit", vit, tf.ViTModel, processor_config("vit", False, 32, None), (32, 32), 1)
    vit_cls = tf.ViTConfig(
        hidden_size=40, num_hidden_layers=1, num_attention_heads=5, intermediate_size=64,
        image_size=24, patch_size=6, qkv_bias=False, num_labels=3,
    )
    fixture("vit-resized", "vit", vit_cls, tf.ViTForImageClassification,
            processor_config("vit", True, 24, None), (41, 30), 2)
    dino = tf.Dinov2Config(
        hidden_size=48, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2,
        image_size=28, patch_size=7, layerscale_value=0.5,
    )
    fixture("dinov2", "dinov2", dino, tf.Dinov2Model, processor_config("dinov2", False, 28, None), (28, 28), 3)
    dino_big = tf.Dinov2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=3,
        image_size=42, patch_size=7,
    )
    fixture("dinov2-interpolated", "dinov2", dino_big, tf.Dinov2Model,
            processor_config("dinov2", True, 32, 28), (36, 50), 4)
    resnet = tf.ResNetConfig(
        embedding_size=8, hidden_sizes=[16, 24, 32], depths=[1, 2, 1], layer_type="bottleneck",
    )
    fixture("resnet", "resnet", resnet, tf.ResNetModel, processor_config("resnet", False, 40, None), (40, 40), 5)
    resnet_basic = tf.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 12], depths=[2, 1], layer_type="basic",
        downsample_in_first_stage=True, num_labels=4,
    )
    fixture("resnet-basic-resized", "resnet", resnet_basic, tf.ResNetForImageClassification,
            processor_config("resnet", True, 32, None), (45, 37), 6)
    convnext = tf.ConvNextConfig(hidden_sizes=[8, 16, 24], depths=[1, 2, 1], num_stages=3, patch_size=4)
    fixture("convnext", "convnext", convnext, tf.ConvNextModel,
            processor_config("convnext", False, 32, None), (32, 32), 7)
    convnext_plain = tf.ConvNextConfig(
        hidden_sizes=[12, 12], depths=[1, 1], num_stages=2, patch_size=2, layer_scale_init_value=0.0,
        hidden_act="gelu", num_labels=2,
    )
    fixture("convnext-noscale", "convnext", convnext_plain, tf.ConvNextForImageClassification,
            processor_config("convnext", False, 20, None), (20, 20), 8)
    clip = tf.CLIPVisionConfig(
        hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        image_size=32, patch_size=8,
    )
    fixture("clip", "clip", clip, tf.CLIPVisionModel, processor_config("clip", False, 32, None),
            (32, 32), 9)
    clip_full = tf.CLIPConfig(
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "vocab_size": 64, "bos_token_id": 0,
                     "eos_token_id": 1},
        vision_config={"hidden_size": 40, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 5, "image_size": 24, "patch_size": 6,
                       "hidden_act": "gelu"},
        projection_dim=8,
    )
    fixture("clip-full-resized", "clip", clip_full, tf.CLIPModel,
            processor_config("clip", True, 26, 24), (30, 41), 10)


if __name__ == "__main__":
    main()
