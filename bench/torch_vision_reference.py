"""PyTorch reference for `w2s bench images`: the same vision model and batch as w2s, timed the same
way (forward to pooled features, no gradient; each step timed alone, the median counts).

Usage: python3 bench/torch_vision_reference.py MODEL_DIR --batch 16 --size 224 --steps 10
MODEL_DIR is a w2s vision folder. A built-in EfficientNet-Lite folder (config.json model_type
"efficientnet-lite") is run by the implementation its weights were published for
(`pip install efficientnet_lite_pytorch`), on the model.safetensors w2s converted; a Hugging Face folder
by transformers' AutoModel (pooled output as w2s defines it).
Prints one JSON line: {"images_per_second": ..., "torch": version, "threads": n}.
"""
import argparse
import json
import os
import time

import torch


def load(folder):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    if cfg["model_type"] == "efficientnet-lite":
        from efficientnet_lite_pytorch import EfficientNet

        variant = {224: "lite0", 240: "lite1", 260: "lite2", 280: "lite3", 300: "lite4"}[cfg["image_size"]]
        from safetensors.torch import load_file

        model = EfficientNet.from_name(f"efficientnet-{variant}")
        missing, unexpected = model.load_state_dict(
            load_file(os.path.join(folder, "model.safetensors")), strict=False
        )
        # w2s's conversion leaves out only the batch-norm step counters.
        assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), missing
        model.eval()
        return lambda x: model._avg_pooling(model.extract_features(x)).flatten(1)
    from transformers import AutoModel

    model = AutoModel.from_pretrained(folder).eval()
    if cfg["model_type"] in ("vit", "dinov2"):
        return lambda x: model(pixel_values=x).last_hidden_state[:, 0]
    return lambda x: model(pixel_values=x).pooler_output.flatten(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=10)
    a = p.parse_args()
    forward = load(a.model)
    x = torch.rand(a.batch, 3, a.size, a.size) * 2 - 1
    times = []
    with torch.inference_mode():
        forward(x)
        for _ in range(max(a.steps, 1)):
            t = time.perf_counter()
            forward(x)
            times.append(time.perf_counter() - t)
    times.sort()
    print(json.dumps({
        "images_per_second": a.batch / times[len(times) // 2],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
