"""Perturbations a detector meets in the wild (re-compression, resizing, blur, noise), for robustness tests
and as train-time augmentation. Every function maps uint8 images N x 3 x H x W to the same shape and dtype.

    python code/robustness.py                          # every shipped model on CIFAKE test, each perturbation
    python code/robustness.py -mf strong_aug_model --json robust.json --plot robust.png
"""
import functools
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.functional import gaussian_blur

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cli
from classes import load_cifake, load_model
from evaluate import predict_logits, probability, score_at_threshold, temperature_of
from project import ProjectError, cifake_root, model_file, model_path, pick_device


def jpeg(images, quality):
    """Re-encode each image as a JPEG at `quality` (PIL, 4:2:0 chroma subsampling) and decode it again."""
    out = torch.empty_like(images)
    for i, image in enumerate(images.permute(0, 2, 3, 1).numpy()):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        out[i] = torch.from_numpy(np.array(Image.open(buffer).convert("RGB"))).permute(2, 0, 1)
    return out


def rescale(images, size):
    """Down to size x size (antialiased bilinear) and back up to the original size."""
    h, w = images.shape[-2:]
    small = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    back = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return back.round().clamp(0, 255).to(torch.uint8)


def blur(images, sigma):
    """Gaussian blur with standard deviation `sigma` pixels (kernel 2 * ceil(3 sigma) + 1)."""
    size = 2 * int(np.ceil(3 * sigma)) + 1
    return gaussian_blur(images.float(), [size, size], [sigma, sigma]).round().clamp(0, 255).to(torch.uint8)


def noise(images, std, seed=0):
    """Additive Gaussian noise of `std` grey levels (0..255 scale), from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    noisy = images.float() + std * torch.randn(images.shape, generator=g)
    return noisy.round().clamp(0, 255).to(torch.uint8)


PERTURBATIONS = {
    "none": lambda x: x,
    "jpeg q90": lambda x: jpeg(x, 90),
    "jpeg q75": lambda x: jpeg(x, 75),
    "jpeg q50": lambda x: jpeg(x, 50),
    "downscale 24 px": lambda x: rescale(x, 24),
    "blur sigma 0.5": lambda x: blur(x, 0.5),
    "blur sigma 1.0": lambda x: blur(x, 1.0),
    "horizontal flip": lambda x: x.flip(3),
    "noise std 4": lambda x: noise(x, 4.0),
}


def augment(images, kinds, seed):
    """CNNSpot-style train-time augmentation: each image, with probability 0.5 per kind, is blurred
    (sigma uniform in 0.1..1.5) and/or JPEG re-compressed (quality uniform in 60..95)."""
    rng = np.random.default_rng(seed)
    out = images.clone()
    for kind in kinds:
        chosen = np.flatnonzero(rng.random(len(out)) < 0.5)
        for i, value in zip(chosen, rng.uniform(*((0.1, 1.5) if kind == "blur" else (60, 96)), size=len(chosen))):
            out[i:i + 1] = blur(out[i:i + 1], value) if kind == "blur" else jpeg(out[i:i + 1], int(value))
    return out


def perturbation_table(models, dataset, device="cpu", perturbations=PERTURBATIONS, threshold=0.5, score=None):
    """Accuracy (at `threshold`) and AUROC of each model on `dataset` under each perturbation: a DataFrame indexed
    by (perturbation, model). `score(model_name, perturbation_name, compute)` may stand between the table and
    `compute()`, which returns the model's logits (reproduce.py keeps them on disk that way)."""
    rows, labels = {}, dataset.labels.numpy()
    score = score or (lambda model_name, perturbation_name, compute: compute())
    for name, perturb in perturbations.items():
        perturbed = functools.cache(lambda perturb=perturb: perturb(dataset.images))    # once, and only if needed
        for model_name, model in models.items():
            compute = lambda model=model: predict_logits(model, perturbed(), device)
            scores = probability(score(model_name, name, compute), temperature_of(model))
            r = score_at_threshold(labels, scores, threshold)
            rows[name, model_name] = {"accuracy": r["accuracy"], "auroc": r["auroc"]}
    return pd.DataFrame(rows).T.rename_axis(["perturbation", "model"])


def wide_table(table):
    """A perturbation_table as one row per perturbation (in PERTURBATIONS order), one column per metric and model."""
    return table.unstack("model").loc[[p for p in PERTURBATIONS if p in table.index.get_level_values(0)]]


def main(argv=None):
    from training import SHIPPED_MODELS               # here: training imports this module for augment()
    parser = cli.parser(__doc__, data="CIFAKE folder")
    parser.add_argument("-mf", "--model-file", help="one model (config key, name or path; default: every shipped one)")
    parser.add_argument("--split", default="test", choices=["test", "train"])
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    parser.add_argument("--plot", metavar="PATH", help="save the bar chart")
    args = cli.parse(parser, argv)
    device = pick_device(args.device)
    if args.model_file:
        paths = [model_path(args.model_file)]
    else:
        paths = [p for p in (model_file(name, args.sample) for name in SHIPPED_MODELS) if p.is_file()]
    if not paths:
        raise ProjectError("no trained models found: train them first (python code/reproduce.py trains any missing)")
    models = {p.stem: load_model(p, device)[0] for p in paths}
    dataset = load_cifake(cifake_root(args.data, args.sample), args.split)
    table = perturbation_table(models, dataset, device)
    print(f"\nrobustness on {dataset.name} (n = {len(dataset)}, threshold 0.5):\n"
          f"{wide_table(table).to_string(float_format=lambda v: f'{v:.4f}')}")
    if args.json:
        records = [{"perturbation": p, "model": m, **row} for (p, m), row in table.to_dict(orient="index").items()]
        cli.write_json(args.json, {"dataset": dataset.name, "n": len(dataset), "threshold": 0.5,
                                   "sample_data": args.sample, "results": records})
    if args.plot:
        from figures import robustness_bars
        cli.save_figure(robustness_bars(table), args.plot)
    return table


if __name__ == "__main__":
    cli.run(main)
