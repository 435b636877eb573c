"""Detectors under the perturbations a detector meets in the wild (re-compression, resizing, blur, noise; the
operations themselves are in perturb.py).

Its command: `python code/robustness.py` (--help lists the flags).
"""
import functools

import pandas as pd

from realfake import FAKE
from realfake.data.perturb import blur, jpeg, noise, rescale
from realfake.metrics import probability, rank_auroc, score_at_threshold
from realfake.models.inference import predict_logits, temperature_of

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


SHORT_SIDES = (64, 96, 128, 160, 192)          # smaller images than the full-size model's 224 px, as users send them


def by_short_side(model, dataset, labels, keep, threshold, sides=SHORT_SIDES, device="cpu"):
    """A full-size model on `dataset` (its held-out fold) as if each image had been `side` px: shrunk (antialiased),
    then brought back to the model's input size as predict.py decodes a small image. {side: AUROC of the images at
    `keep` (the reals and JPEG fakes), the share of reals called real, the share of those fakes called fake}."""
    rows, fake = {}, labels == FAKE
    for side in sides:
        scores = probability(predict_logits(model, rescale(dataset.images, side), device), temperature_of(model))
        rows[side] = {"AUROC, JPEG fakes": float(rank_auroc(labels[keep], scores[keep])),
                      "reals called real": float((scores[~fake] >= threshold).mean()),
                      "JPEG fakes called fake": float((scores[keep & fake] < threshold).mean())}
    return rows


def wide_table(table):
    """A perturbation_table as one row per perturbation (in PERTURBATIONS order), one column per metric and model."""
    return table.unstack("model").loc[[p for p in PERTURBATIONS if p in table.index.get_level_values(0)]]
