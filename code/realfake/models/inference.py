"""Running a model over images: its logit for every image (the mean over an image's crops), P(real) through the
model's calibration temperature, and a store of logits on disk keyed by the model's weights and the images, so
nothing is scored twice."""
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import torch

from realfake.data.inputs import normalise
from realfake.metrics import probability
from realfake.project import REPO_ROOT

SCORES_DIR = REPO_ROOT / "data" / ".scores"            # logits kept by ScoreStore (ignored by git, like all of data/)


@torch.inference_mode()
def predict_logits(model, images, device="cpu", batch_size=4096, crops_per_image=1):
    """The model's logit for each image (uint8 N x 3 x 32 x 32); with K crops per image, the mean over its crops
    (as StrongCNN averages its test-time views)."""
    model = model.to(device).eval()
    batch_size = min(batch_size, getattr(model, "max_batch", batch_size))
    logits = []
    for start in range(0, len(images), batch_size):
        batch = normalise(images[start:start + batch_size].to(device)).contiguous(memory_format=torch.channels_last)
        logits.append(model(batch).float().cpu())
    logits = torch.cat(logits) if logits else torch.zeros(0)
    return logits.reshape(-1, crops_per_image).mean(1).numpy()


def predict_scores(model, images, device="cpu", batch_size=4096, crops_per_image=1):
    """P(real) for each image: the sigmoid of its (mean) logit, divided by the model's calibration temperature
    where it has one."""
    return probability(predict_logits(model, images, device, batch_size, crops_per_image), temperature_of(model))


VERDICTS = ("fake", "uncertain", "real")


def band_verdicts(p_real, distances, band, limit):
    """'fake' below band[0], 'real' from band[1], 'uncertain' between them or where the distance to the training
    images is over `limit` (a photo_model's band and ood_limit)."""
    verdict = np.where(p_real < band[0], "fake", np.where(p_real >= band[1], "real", "uncertain"))
    return np.where(distances > limit, "uncertain", verdict)


@torch.inference_mode()
def predict_verdicts(model, images, device="cpu"):
    """(P(real), verdicts) of a model with a band (PretrainedDetector with ood_components): one backbone pass per
    image gives both the logit and the distance."""
    model = model.to(device).eval()
    logits, distances = [], []
    for start in range(0, len(images), model.max_batch):
        pooled = model.pooled(normalise(images[start:start + model.max_batch].to(device)))
        logits.append(model.head_logit(pooled).float().cpu())
        distances.append(model.distance(pooled).float().cpu())
    if not logits:
        return np.zeros(0), np.zeros(0, dtype="<U9")
    p_real = probability(torch.cat(logits).numpy(), temperature_of(model))
    return p_real, band_verdicts(p_real, torch.cat(distances).numpy(), model.band.tolist(), float(model.ood_limit))


def temperature_of(model):
    return getattr(model, "temperature", 1.0)


def dataset_logits(model, dataset, device="cpu", batch_size=4096):
    """The model's logit for every image of an ImageSet (mean over its crops)."""
    return predict_logits(model, dataset.images, device, batch_size, dataset.crops_per_image)


def score_dataset(model, dataset, device="cpu", batch_size=4096):
    """P(real) for every image of an ImageSet."""
    return predict_scores(model, dataset.images, device, batch_size, dataset.crops_per_image)


class ScoreStore:
    """The logits of a model on a set of images, kept on disk under a key of the model (its weights and
    architecture), the images' contents and the perturbation; computed only when missing. P(real) follows from a
    logit and the model's temperature, so calibrating a model needs no new scores."""

    def __init__(self, models, folder=SCORES_DIR):
        self.folder, self.models = Path(folder), models
        self.model_keys = {name: model_key(model) for name, model in models.items()}

    def __call__(self, model_name, images_key, compute):
        path = self.folder / f"{self.model_keys[model_name]}-{images_key}-logits.npy"
        if path.is_file():
            return np.load(path)
        scores = compute()
        self.folder.mkdir(parents=True, exist_ok=True)
        np.save(path, scores)
        return scores

    def scores(self, model_name, dataset, device="cpu"):
        """P(real) of one of the models for every image of `dataset`, from the store when it is there."""
        model = self.models[model_name]
        logits = self.for_dataset(dataset)(model_name, "none", lambda: dataset_logits(model, dataset, device))
        return probability(logits, temperature_of(model))

    def for_dataset(self, dataset):
        """A scoring hook for `dataset`: (model name, perturbation name, compute logits) -> logits."""
        key = hashlib.sha1(dataset.images.numpy().tobytes()).hexdigest()[:16]
        return lambda model_name, perturbation, compute: self(
            model_name, f"{key}-{re.sub(r'[^a-z0-9]+', '_', perturbation)}", compute)


def model_key(model):
    """A short hash of a model's weights and architecture (not of its file, whose metadata may change)."""
    digest = hashlib.sha1(json.dumps(model.config, sort_keys=True).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
