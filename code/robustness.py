"""Perturbations a detector meets in the wild (re-compression, resizing, blur, noise), for robustness tests
and as train-time augmentation. Every function maps uint8 images N x 3 x H x W to the same shape and dtype."""
import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.functional import gaussian_blur


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


def perturbation_table(models, dataset, device="cpu", perturbations=PERTURBATIONS, threshold=0.5):
    """Accuracy (at `threshold`) and AUROC of each model on `dataset` under each perturbation:
    a DataFrame indexed by (perturbation, model)."""
    import pandas as pd
    from evaluate import predict_scores, score_at_threshold
    rows, labels = {}, dataset.labels.numpy()
    for name, perturb in perturbations.items():
        images = perturb(dataset.images)
        for model_name, model in models.items():
            r = score_at_threshold(labels, predict_scores(model, images, device), threshold)
            rows[name, model_name] = {"accuracy": r["accuracy"], "auroc": r["auroc"]}
    return pd.DataFrame(rows).T.rename_axis(["perturbation", "model"])


def wide_table(table):
    """A perturbation_table as one row per perturbation (in PERTURBATIONS order), one column per metric and model."""
    return table.unstack("model").loc[[p for p in PERTURBATIONS if p in table.index.get_level_values(0)]]
