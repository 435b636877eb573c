"""A detector that never sees a fake: a model of real images only, and a score of how likely an image is for its
complexity (the idea of ZED, Cozzolino et al. 2024, with the input-complexity correction of Serra et al. 2020).

Two models of real images. "patch": a Gaussian mixture (PATCH_MODEL) of the 8 x 8 patches (CIFAKE's JPEG blocks) of
real training images; an image's likelihood is the mean log-likelihood of its 16 patches. "flow": the project's own
RealNVP-style flow (training/own_generators.py, trained on the same real images), a learned lossless coder of real
images as in ZED; an image's likelihood is its log-density per dimension. An image's complexity is the size of its
PNG encoding. Among real images likelihood falls along a line in PNG size (fitted on the same images); the score is
how far an image lies above that line (one-sided: below it is fake) or, for the two-sided score, minus its distance
either way. P(real) is a logistic function of the score whose two numbers, like every model's temperature, and the
threshold (balanced accuracy) are fitted on CIFAKE's validation split: the image model never sees a fake. A fitted
detector is kept in data/.zeroshot/ under its settings and the images' contents.

Its command: `python code/zeroshot.py` (--help lists the flags).
"""
import hashlib
import io
import json
import pickle
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.mixture import GaussianMixture

from classes import development_sets, load_cifake
from realfake import REAL
from realfake.data.datasets import load_image_files
from realfake.evaluation.scoring import generator_figures
from realfake.metrics import choose_threshold, score_at_threshold
from realfake.models.generators import Flow
from realfake.project import (
    REPO_ROOT,
    ProjectError,
    atomic_write_bytes,
    dataset_dir,
    git_commit,
    machine_description,
    shown,
)
from realfake.training.own_generators import own_folder, own_generator

CACHE_DIR = REPO_ROOT / "data" / ".zeroshot"
PATCH = 8
PATCH_MODEL = dict(components=8, fit_images=8000, max_iter=100)     # fit_images: the reals each line is fitted on
MODELS = {"patch": "patch mixture", "flow": "own flow"}
SCORES = ("one-sided", "two-sided")


def patches(images):
    """The non-overlapping PATCH x PATCH patches of uint8 images N x 3 x H x W, as float64 rows in [0, 1]:
    N x (H W / PATCH^2) x (3 PATCH^2)."""
    n, c, h, w = images.shape
    tiles = images.reshape(n, c, h // PATCH, PATCH, w // PATCH, PATCH).permute(0, 2, 4, 1, 3, 5)
    return tiles.reshape(n, (h // PATCH) * (w // PATCH), c * PATCH * PATCH).numpy().astype(np.float64) / 255


def png_bytes(images):
    """The size of each uint8 image's PNG encoding (PIL, default compression): its complexity."""
    sizes = np.empty(len(images))
    for i, image in enumerate(images.permute(0, 2, 3, 1).numpy()):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "PNG")
        sizes[i] = buffer.tell()
    return sizes


@dataclass
class Detector:
    """A model of real images (a patch mixture, or an own flow), the line of its likelihood in PNG size among real
    images, and the map to P(real)."""
    model: object                       # a fitted GaussianMixture, or a generators.Flow
    line: tuple = (0.0, 0.0)            # intercept, slope: a real image's expected likelihood for its PNG size
    spread: float = 1.0                 # the real images' spread about that line
    score_kind: str = "one-sided"
    logistic: tuple = (1.0, 0.0)        # P(real) = sigmoid(a * score + b), fitted on validation
    threshold: float = 0.5
    facts: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.score_kind not in SCORES:
            raise ProjectError(f"unknown zero-shot score '{self.score_kind}' (choose from {', '.join(SCORES)})")

    def likelihood(self, images, batch_size=1000):
        """The mixture's mean log-likelihood of each image's patches, or the flow's log-density per dimension."""
        if isinstance(self.model, GaussianMixture):
            rows = patches(images)
            return self.model.score_samples(rows.reshape(-1, rows.shape[-1])).reshape(rows.shape[:2]).mean(1)
        with torch.inference_mode():
            return torch.cat([self.model.log_likelihood(images[start:start + batch_size])
                              for start in range(0, len(images), batch_size)]).double().numpy()

    def score(self, images):
        """Higher is more real: the likelihood's distance above the real images' line, in units of their spread
        (two-sided: minus its distance either way)."""
        intercept, slope = self.line
        z = (self.likelihood(images) - intercept - slope * png_bytes(images)) / self.spread
        return z if self.score_kind == "one-sided" else -np.abs(z)

    def p_real(self, images):
        a, b = self.logistic
        return 1 / (1 + np.exp(-(a * self.score(images) + b)))


def own_flow(real_images):
    """The project's own flow trained on these real images (own_generators.py: made on first use, ~7 minutes on 2
    cores)."""
    folder = own_generator("flow", real_images)
    settings = json.loads((folder / "settings.json").read_text())["settings"]
    flow = Flow(settings["width"])
    flow.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    return flow.eval()


def fit_detector(real_images, seed=0, settings=PATCH_MODEL, model="patch"):
    """A Detector fitted on settings["fit_images"] of uint8 real images (drawn with `seed`), uncalibrated: the patch
    mixture and the line, or the line of the own flow trained on all of `real_images`."""
    chosen = np.sort(np.random.default_rng(seed).permutation(len(real_images))[:settings["fit_images"]])
    images = real_images[torch.from_numpy(chosen)]
    if model == "flow":
        detector = Detector(own_flow(real_images))
    else:
        rows = patches(images)
        detector = Detector(GaussianMixture(settings["components"], covariance_type="full",
                                            max_iter=settings["max_iter"], random_state=seed)
                            .fit(rows.reshape(-1, rows.shape[-1])))
    likelihood, size = detector.likelihood(images), png_bytes(images)
    slope, intercept = np.polyfit(size, likelihood, 1)
    detector.line = (float(intercept), float(slope))
    detector.spread = float(np.std(likelihood - (intercept + slope * size)))
    return detector


def calibrate(detector, val_set):
    """The logistic map to P(real) and the threshold, fitted on a validation split of real and fake images. The sign
    is the score's: a validation split whose fakes score higher than its reals is refused."""
    labels, score = val_set.labels.numpy(), detector.score(val_set.images)
    fit = LogisticRegression(C=1e6).fit(score[:, None], labels == REAL)
    if fit.coef_[0, 0] <= 0:
        raise ProjectError("the zero-shot score ranks this validation split's fakes above its reals: no P(real) "
                           "map keeps its sign")
    detector.logistic = (float(fit.coef_[0, 0]), float(fit.intercept_[0]))
    detector.threshold = choose_threshold(labels, detector.p_real(val_set.images))
    return detector


def detector_for(train, val, seed=0, score_kind="one-sided", settings=PATCH_MODEL, model="patch", cache=CACHE_DIR):
    """The detector for a training split (its real images), calibrated on a validation split. The fit (the same
    for both scores) is kept on its first use and read back later; its facts hold the fit's seconds (the own flow's
    training not included: own_generators.py's settings.json has it)."""
    if model not in MODELS:
        raise ProjectError(f"unknown zero-shot model '{model}' (choose from {', '.join(MODELS)})")
    reals = train.images[train.labels == REAL]
    flow = own_folder("flow", reals).name if model == "flow" else None         # the weights the flow's fit reads
    key = hashlib.sha1(reals.numpy().tobytes() + repr((seed, settings, PATCH, flow)).encode()).hexdigest()[:16]
    path = Path(cache) / f"{model}-seed{seed}-{key}.pkl"
    if path.is_file():
        detector = pickle.loads(path.read_bytes())
    else:
        started = time.perf_counter()
        detector = fit_detector(reals, seed, settings, model)
        detector.facts = {"fit seconds": round(time.perf_counter() - started, 1), "seed": seed,
                          "fit images": min(len(reals), settings["fit_images"])}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(detector))
    return calibrate(replace(detector, score_kind=score_kind), val)


def benchmark_figures(detector, test, fakes, reals):
    """A JSON-ready benchmark record's figures: CIFAKE test AUROC and accuracy at the validation threshold, each
    development generator's AUROC against CIFAKE's test reals, and images scored per second."""
    started = time.perf_counter()
    test_scores = detector.p_real(test.images)
    per_second = len(test) / (time.perf_counter() - started)
    at_threshold = score_at_threshold(test.labels.numpy(), test_scores, detector.threshold)
    figures = generator_figures(lambda dataset: detector.p_real(dataset.images), fakes, reals)
    return {"cifake test auroc": at_threshold["auroc"], "cifake test accuracy": at_threshold["accuracy"],
            "val threshold": detector.threshold, "images per second": round(per_second),
            "generators": {g: f for g, f in figures.items() if isinstance(f, dict)}}


def score_folders(paths, detector):
    """P(real) and the call at the detector's threshold for every image below `paths` (a table), and the files
    that could not be read."""
    tables, failed = [], []
    for path in paths:
        images = load_image_files(path, Path(path).name, verbose=False)
        if images.report.found == 0:
            raise ProjectError(f"no image found in {path}: give a folder or file of images (any format PIL reads)")
        failed += images.report.skipped
        p_real = detector.p_real(images.images) if len(images) else np.empty(0)
        tables.append(pd.DataFrame({"path": images.sources, "p_real": p_real,
                                    "label": np.where(p_real >= detector.threshold, "Real", "Fake")}))
    return pd.concat(tables, ignore_index=True), failed


def run_zero_shot(out, train, val, models=tuple(MODELS), kinds=SCORES, seeds=3, sample=False):
    """The zero-shot rows of the benchmark: each model of real images (`models`) with each score (`kinds`), fitted
    on `train` (`seeds` times for the patch mixture), each run added to `out` (variants.json) as it ends."""
    result = json.loads(out.read_text()) if out.is_file() else {"runs": []}
    test = load_cifake(dataset_dir("CIFAKE_dir", sample), "test", verbose=False)
    fakes, reals = development_sets(dataset_dir("CIFAKE_dir", sample), dataset_dir("ddpm32_dir", sample),
                                    dataset_dir("generators32_dir", sample))
    plan = [(model, seed, kind) for model in models for seed in range(seeds if model == "patch" else 1)
            for kind in kinds]
    for model, seed, kind in plan:
        detector = detector_for(train, val, seed, kind, model=model)
        record = {"variant": f"{MODELS[model]}, {kind}", "seed": seed, "benchmark": "zeroshot", "held_out": "all",
                  "unseen": list(fakes), "arch": MODELS[model], "fake shares": {},
                  "fit images": detector.facts["fit images"],
                  "training seconds": detector.facts["fit seconds"], **benchmark_figures(detector, test, fakes, reals),
                  "commit": git_commit()}
        print(f"zero-shot {MODELS[model]}, {kind}, seed {seed}: CIFAKE AUROC {record['cifake test auroc']:.4f}, "
              + ", ".join(f"{g} {f['auroc']:.3f}" for g, f in record["generators"].items())
              + f"; fit {record['training seconds']:.0f} s, {record['images per second']:,} images/s")
        key = lambda run: (run.get("benchmark"), run["variant"], run["seed"])
        result["runs"] = [run for run in result["runs"] if key(run) != key(record)] + [record]
        result.update(machine=machine_description("cpu"), torch=torch.__version__)
        atomic_write_bytes(out, (json.dumps(result, indent=2, default=float) + "\n").encode())
        print(f"wrote {shown(out)}")
    return result
