"""Scoring a model on a dataset: P(real) for every image, and every figure computed from those scores.

All metrics come from scikit-learn and are tabled with pandas; test.py, train.py, reproduce.py and
the notebooks call these functions.
"""
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize_scalar
from scipy.stats import rankdata
from sklearn.metrics import (average_precision_score, confusion_matrix, precision_recall_fscore_support,
                             roc_auc_score, roc_curve)

from classes import AGIRI_MAX_PIXELS, FAKE, LABEL_NAMES, REAL, normalise
from imagefiles import IMAGE_SIZE, crops_per_image, decode_files
from project import REPO_ROOT, ProjectError

SCORES_DIR = REPO_ROOT / "data" / ".scores"            # logits kept by ScoreStore (ignored by git, like all of data/)

SWEEP_THRESHOLDS = tuple(round(t, 1) for t in np.arange(0.1, 0.95, 0.1))
ECE_BINS = 15                       # equal-width bins of the confidence in the call
BOOTSTRAP_RESAMPLES = 1000          # resamples of the test images behind every 95% interval
FULL_SIZE_ABOVE = 64                # short side (px) above which predict.py gives an image to the full-size model
MIN_PER_CLASS_FOR_INTERVAL = 5      # fewer images of a class than this: no interval (a handful of values is not one)


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


def probability(logits, temperature=1.0):
    """P(real) = sigmoid(logit / temperature), in float64: float32 rounds confident scores to exactly 0 or 1, and
    the ties it makes would blur AUROC at the fourth decimal."""
    return torch.sigmoid(torch.as_tensor(logits, dtype=torch.float64) / temperature).numpy()


def predict_scores(model, images, device="cpu", batch_size=4096, crops_per_image=1):
    """P(real) for each image: the sigmoid of its (mean) logit, divided by the model's calibration temperature
    where it has one."""
    return probability(predict_logits(model, images, device, batch_size, crops_per_image), temperature_of(model))


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


def score_files(model, files, threshold, preprocess="resize", device="cpu", model_name="model"):
    """P(real) and the label at `threshold` for image files of any size and format: (table with one row per
    readable file, `in_domain` when it is stored at 32 x 32 as the models' training images were, or for the
    full-size model (preprocess "full") when its short side is over FULL_SIZE_ABOVE; [(file, reason)] for the
    others; the decoded uint8 images)."""
    images, ok, failed, _, sizes = decode_files(files, preprocess, AGIRI_MAX_PIXELS, desc="reading images")
    scores = predict_scores(model, images, device, crops_per_image=crops_per_image(preprocess))
    table = pd.DataFrame({"path": [str(files[i]) for i in ok], "p_real": scores,
                          "label": [LABEL_NAMES[int(s >= threshold)] for s in scores], "model": model_name,
                          "threshold": threshold, "preprocess": preprocess,
                          "in_domain": ((sizes[ok].min(1) > FULL_SIZE_ABOVE) if preprocess == "full" else
                                        (sizes[ok] == IMAGE_SIZE).all(1)) if ok else np.zeros(0, bool)})
    return table, [(str(files[i]), reason) for i, reason in failed], images


def parse_threshold(value, checkpoint):
    """A number in [0, 1], or 'val' for the validation-chosen threshold stored with the model."""
    if value == "val":
        return float(checkpoint["threshold"])
    try:
        threshold = float(value)
    except ValueError:
        raise ProjectError(f"-thr must be a number in [0, 1] or 'val', got '{value}'") from None
    if not 0 <= threshold <= 1:
        raise ProjectError(f"-thr must be in [0, 1], got {threshold}")
    return threshold


def fit_temperature(labels, logits):
    """The temperature T > 0 that minimises the log loss of sigmoid(logit / T) (Guo et al. 2017), for use on
    validation data only. Dividing by T keeps every ranking and the decision at 0.5; it only makes P(real) honest."""
    labels, logits = np.asarray(labels, dtype=np.float64), np.asarray(logits, dtype=np.float64)
    nll = lambda log_t: float(np.mean(np.logaddexp(0, -logits / np.exp(log_t)) * labels +
                                      np.logaddexp(0, logits / np.exp(log_t)) * (1 - labels)))
    return float(np.exp(minimize_scalar(nll, bounds=(np.log(0.01), np.log(100)), method="bounded").x))


def calibration_figures(labels, logits):
    """The temperature fitted to validation logits, the threshold chosen on the calibrated scores, the ECE before
    and after, and every validation figure at the threshold."""
    temperature = fit_temperature(labels, logits)
    scores = probability(logits, temperature)
    threshold = choose_threshold(labels, scores)
    return {"temperature": temperature, "val_ece_before": expected_calibration_error(labels, probability(logits)),
            "val_ece": expected_calibration_error(labels, scores), "threshold": threshold,
            "val_at_threshold": score_at_threshold(labels, scores, threshold)}


def expected_calibration_error(labels, scores, bins=ECE_BINS):
    """ECE: the mean gap between confidence and accuracy over `bins` equal-width bins of the confidence in the
    predicted label (max(p, 1 - p), the call at 0.5), weighted by the share of images in each bin."""
    table = reliability_table(labels, scores, bins)
    return float((table["n"] * (table["confidence"] - table["accuracy"]).abs()).sum() / max(1, table["n"].sum()))


def reliability_table(labels, scores, bins=ECE_BINS):
    """Per bin of confidence in the predicted label (equal widths over [0, 1]; empty bins left out): the number of
    images, their mean confidence and the share called right."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    called_real = scores >= 0.5
    confidence = np.where(called_real, scores, 1 - scores)
    frame = pd.DataFrame({"bin": np.minimum((confidence * bins).astype(int), bins - 1), "confidence": confidence,
                          "correct": called_real == (labels == REAL)})
    table = frame.groupby("bin").agg(n=("correct", "size"), confidence=("confidence", "mean"),
                                     accuracy=("correct", "mean"))
    table.index = [f"{b / bins:.3f}-{(b + 1) / bins:.3f}" for b in table.index]
    return table


def choose_threshold(labels, scores):
    """The score threshold that maximises balanced accuracy (for use on validation data only)."""
    fpr, tpr, thresholds = roc_curve(labels, scores)
    best = np.argmax((tpr + 1 - fpr)[1:]) + 1          # index 0 is roc_curve's 'call nothing real' point
    return float(thresholds[best])


def score_at_threshold(labels, scores, threshold=0.5):
    """Accuracy, confusion matrix, per-class precision/recall/F1, AUROC and AP at one threshold.
    An image is called real when P(real) >= threshold. AUROC and AP are None for a one-class set."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    predicted = (scores >= threshold).astype(int)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=[FAKE, REAL], zero_division=0)
    both = len(np.unique(labels)) == 2
    return {
        "n": int(len(labels)),
        "threshold": float(threshold),
        "accuracy": float((predicted == labels).mean()) if len(labels) else float("nan"),
        "called_real": float(predicted.mean()) if len(labels) else float("nan"),
        "confusion": confusion_matrix(labels, predicted, labels=[FAKE, REAL]).tolist(),
        "per_class": {LABEL_NAMES[c]: {"precision": float(precision[i]), "recall": float(recall[i]),
                                       "f1": float(f1[i]), "support": int(support[i])}
                      for i, c in enumerate((FAKE, REAL))},
        "auroc": float(roc_auc_score(labels, scores)) if both else None,
        "ap": float(average_precision_score(labels, scores)) if both else None,
    }


def bootstrap_intervals(labels, scores, threshold=0.5, resamples=BOOTSTRAP_RESAMPLES, level=0.95, seed=0,
                        metrics=("accuracy", "auroc")):
    """Percentile-bootstrap confidence intervals: how far a figure could move on another draw of test images with as
    many fakes and reals. Images are resampled with replacement within each class (stratified), so no resample lacks
    a class. `metrics`: any of accuracy (at `threshold`), auroc, ap, fakes_caught (share of fakes called fake) and
    reals_kept (share of reals called real). Returns {metric: (low, high)}, or {metric: None} where a class the
    metric needs has fewer than MIN_PER_CLASS_FOR_INTERVAL images: too few for an interval to mean anything."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    members = {c: np.flatnonzero(labels == c) for c in (FAKE, REAL)}
    needs = {"fakes_caught": (FAKE,), "reals_kept": (REAL,)}
    called_real = scores >= threshold
    statistic = {"accuracy": lambda y, s, r: (r == (y == REAL)).mean(-1), "auroc": lambda y, s, r: rank_auroc(y, s),
                 "ap": lambda y, s, r: np.array([average_precision_score(*row) for row in zip(y, s)]),
                 "fakes_caught": lambda y, s, r: np.where(y == FAKE, ~r, 0).sum(-1) / (y == FAKE).sum(-1),
                 "reals_kept": lambda y, s, r: np.where(y == REAL, r, 0).sum(-1) / (y == REAL).sum(-1)}
    enough = lambda metric: all(len(members[c]) >= MIN_PER_CLASS_FOR_INTERVAL for c in needs.get(metric, (FAKE, REAL)))
    wanted = [metric for metric in metrics if enough(metric)]
    values = {metric: [] for metric in wanted}
    rng = np.random.default_rng(seed)
    for start in range(0, resamples if wanted else 0, 100):             # 100 resamples at a time: vectorised, bounded
        rows = min(100, resamples - start)
        index = np.concatenate([rng.choice(m, (rows, len(m))) for m in members.values() if len(m)], axis=1)
        y, s, r = labels[index], scores[index], called_real[index]
        for metric in wanted:
            values[metric].append(statistic[metric](y, s, r))
    tail = 50 * (1 - level)
    return {metric: tuple(float(v) for v in np.percentile(np.concatenate(values[metric]), [tail, 100 - tail]))
            if metric in values else None for metric in metrics}


def figures_with_intervals(labels, scores, threshold, metrics=("accuracy", "auroc", "ap")):
    """Counts, accuracy at 0.5, and each of `metrics` (accuracy at `threshold`, AUROC, AP) with its 95% bootstrap
    interval (None where a class is too small for one): one flat, JSON-ready row."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    point, intervals = score_at_threshold(labels, scores, threshold), bootstrap_intervals(labels, scores, threshold,
                                                                                          metrics=metrics)
    row = {"n_fake": int((labels == FAKE).sum()), "n_real": int((labels == REAL).sum()), "threshold": float(threshold),
           "accuracy at 0.5": score_at_threshold(labels, scores, 0.5)["accuracy"]}
    for metric in metrics:
        low, high = intervals[metric] or (None, None)
        row.update({metric: point[metric], f"{metric}, 95% low": low, f"{metric}, 95% high": high})
    return row


def shown_interval(interval, digits=4):
    """'(low-high)' for an interval of bootstrap_intervals, or a note where the set was too small for one."""
    if interval is None:
        return f"(no interval: under {MIN_PER_CLASS_FOR_INTERVAL} images of a class)"
    return f"({interval[0]:.{digits}f}-{interval[1]:.{digits}f})"


def rank_auroc(labels, scores, axis=-1):
    """AUROC as the Mann-Whitney statistic of the scores' ranks (ties count a half, as in roc_auc_score), along
    `axis`, so that many resamples are scored in one call."""
    ranks = rankdata(scores, axis=axis)
    real = labels == REAL
    n_real = real.sum(axis)
    n_fake = labels.shape[axis] - n_real
    return ((ranks * real).sum(axis) - n_real * (n_real + 1) / 2) / (n_real * n_fake)


def per_class_table(result):
    """The per-class part of a score_at_threshold result as a DataFrame (rows Fake, Real)."""
    table = pd.DataFrame(result["per_class"]).T[["precision", "recall", "f1", "support"]]
    return table.astype({"support": int})


def confusion_table(result):
    names = [LABEL_NAMES[FAKE], LABEL_NAMES[REAL]]
    return pd.DataFrame(result["confusion"], index=[f"true {n}" for n in names],
                        columns=[f"called {n}" for n in names])


def threshold_sweep(labels, scores, thresholds=SWEEP_THRESHOLDS):
    """Accuracy and the Real class's precision, recall and F1 at each threshold."""
    rows = []
    for t in thresholds:
        r = score_at_threshold(labels, scores, t)
        rows.append({"threshold": t, "accuracy": r["accuracy"], "called_real": r["called_real"],
                     **{k: r["per_class"]["Real"][k] for k in ("precision", "recall", "f1")}})
    return pd.DataFrame(rows)


def share_called_real(scores, groups, names, threshold=0.5):
    """For an all-real set (CIFAR-100): per group (class index in `groups`, names in `names`), the number
    of images, the share called real at `threshold` and the mean P(real); sorted worst first."""
    frame = pd.DataFrame({"group": np.asarray(groups), "real": np.asarray(scores) >= threshold,
                          "p_real": np.asarray(scores)})
    table = frame.groupby("group").agg(n=("real", "size"), share_real=("real", "mean"), mean_p_real=("p_real", "mean"))
    table.index = [names[i] for i in table.index]
    return table.sort_values("share_real")


def accuracy_by_group(labels, scores, groups, names, threshold=0.5):
    """Accuracy per content class (for CIFAKE: which kinds of image are hardest?), split by true label."""
    frame = pd.DataFrame({"group": [names[g] for g in np.asarray(groups)], "label": np.asarray(labels),
                          "correct": (np.asarray(scores) >= threshold) == (np.asarray(labels) == REAL)})
    table = frame.pivot_table(index="group", columns="label", values="correct", aggfunc="mean")
    table = table.rename(columns={FAKE: "Fake accuracy", REAL: "Real accuracy"})
    table["accuracy"] = frame.groupby("group")["correct"].mean()
    return table.sort_values("accuracy")


def leaked_test_images(test_set, train_set):
    """Boolean mask of test images whose file is byte-identical to some training file."""
    return np.isin(test_set.digests, train_set.digests)


def evaluate_scores(labels, scores, threshold):
    """Every figure of scores against labels at `threshold`, with ECE and the threshold sweep: (JSON-ready dict,
    the sweep table)."""
    result = score_at_threshold(labels, scores, threshold)
    result["ece"] = expected_calibration_error(labels, scores)
    sweep = threshold_sweep(labels, scores)
    result["sweep"] = sweep.to_dict(orient="records")
    return result, sweep


def evaluate_cifake(model, dataset, threshold, device="cpu", train_set=None, scores=None):
    """Score a CIFAKE split: (every figure test.py reports as a JSON-ready dict, the sweep table, P(real)).
    With `train_set`, also the accuracy without test files byte-identical to training files. `scores`: the
    model's P(real) for the split, if already computed."""
    labels = dataset.labels.numpy()
    scores = score_dataset(model, dataset, device) if scores is None else scores
    result, sweep = evaluate_scores(labels, scores, threshold)
    if train_set is not None:
        leaked = leaked_test_images(dataset, train_set)
        dedup = score_at_threshold(labels[~leaked], scores[~leaked], threshold)
        result["deduplicated"] = {"removed": int(leaked.sum()), "n": dedup["n"], "accuracy": dedup["accuracy"]}
    return result, sweep, scores


def evaluate_fakes(model, fake_files, real_files, threshold, device="cpu", model_name="model"):
    """Does the model catch these generated images? Scores image files of any format (32 x 32 after resizing) as
    FAKE against real image files: (every figure as a JSON-ready dict, with n_fake, n_real, the shares of fakes caught
    and of reals kept, 95% bootstrap intervals and `skipped` [(file, reason)]; the per-file table; the decoded
    images). Raises ProjectError when either side has no readable image."""
    table, skipped, images = score_files(model, [*fake_files, *real_files], threshold, device=device,
                                         model_name=model_name)
    fake_set = set(map(str, fake_files))
    table.insert(1, "true_label", [LABEL_NAMES[FAKE if path in fake_set else REAL] for path in table["path"]])
    labels = (table["true_label"] == LABEL_NAMES[REAL]).to_numpy().astype(int)
    for label, side in ((FAKE, "fake"), (REAL, "real")):
        if not (labels == label).any():
            raise ProjectError(f"no readable {side} image to score ({len(skipped)} skipped: "
                               f"{'; '.join(f'{f}: {r}' for f, r in skipped[:3]) or 'none found'})")
    scores = table["p_real"].to_numpy()
    result, _ = evaluate_scores(labels, scores, threshold)
    metrics = ("accuracy", "auroc", "ap", "fakes_caught", "reals_kept")
    result.update(n_fake=int((labels == FAKE).sum()), n_real=int((labels == REAL).sum()),
                  fakes_caught=result["per_class"]["Fake"]["recall"], reals_kept=result["per_class"]["Real"]["recall"],
                  not_32x32=int((~table["in_domain"]).sum()), skipped=[list(item) for item in skipped],
                  interval95=bootstrap_intervals(labels, scores, threshold, metrics=metrics))
    return result, table, images


DEV_GENERATORS = ("ddpm-cifar10-32", "ddpm-retrained", "gan-small")   # compare detectors; never train a shipped one


def generator_figures(scores_of, fakes, reals):
    """AUROC and AP of each generator's images against the reals, and the mean AUROC over DEV_GENERATORS;
    `scores_of(ImageSet)` gives P(real) for a set's images (the reals are scored once)."""
    real_scores, figures = scores_of(reals), {}
    for name, images in fakes.items():
        labels = np.r_[np.full(len(images), FAKE), np.full(len(reals), REAL)]
        scores = np.concatenate([scores_of(images), real_scores])
        figures[name] = {"auroc": float(roc_auc_score(labels, scores)),
                         "ap": float(average_precision_score(labels, scores)), "n_fake": len(images),
                         "n_real": len(reals)}
    figures["mean AUROC, development generators"] = float(np.mean([figures[g]["auroc"] for g in DEV_GENERATORS
                                                                    if g in figures]))
    return figures


MODEL_CARD = REPO_ROOT / "models" / "card.json"      # written by reproduce.py with models/README.md


def out_of_domain_notice(table, model_name, card=MODEL_CARD):
    """One line for the images of a score_files table that are not 32 x 32, with the transfer figure the model card
    holds for the model (None when every image is in domain)."""
    outside = int((~table["in_domain"]).sum())
    if not outside:
        return None
    transfer = {}
    if Path(card).is_file():
        transfer = json.loads(Path(card).read_text())["models"].get(model_name, {}).get("transfer", {})
    measured = transfer.get("faces AUROC (resize)")
    figure = (f"its AUROC on 256 x 256 faces (DDPM vs CelebA-HQ) was {measured:.2f}, where 0.5 is chance"
              if measured is not None else "the model card holds no transfer figure for it")
    return (f"note: {outside} of {len(table)} images are not {IMAGE_SIZE}x{IMAGE_SIZE}, outside what {model_name} "
            f"was trained on; {figure} (models/README.md): do not read these scores as verdicts")


def summary_row(result):
    """The headline figures of a score_at_threshold result, for a one-row-per-model table."""
    row = {"n": result["n"], "accuracy": result["accuracy"], "called_real": result["called_real"],
           "auroc": result["auroc"], "ap": result["ap"],
           "f1_fake": result["per_class"]["Fake"]["f1"], "f1_real": result["per_class"]["Real"]["f1"],
           "recall_real": result["per_class"]["Real"]["recall"]}
    if "deduplicated" in result:
        row["accuracy_dedup"] = result["deduplicated"]["accuracy"]
    if "ece" in result:
        row["ece"] = result["ece"]
    return row


def cifar100_transfer(scores_by_model, dataset, threshold=0.5):
    """Share of CIFAR-100 images (all real) called real, per model: overall, per coarse and per fine class.
    Returns {"overall": Series, "coarse": DataFrame (20 rows), "fine": DataFrame (100 rows)}."""
    overall, coarse, fine = {}, {}, {}
    for name, scores in scores_by_model.items():
        overall[name] = float((scores >= threshold).mean())
        coarse[name] = share_called_real(scores, dataset.coarse, dataset.coarse_names, threshold)["share_real"]
        fine[name] = share_called_real(scores, dataset.classes, dataset.class_names, threshold)["share_real"]
    first = next(iter(scores_by_model))
    by_first = lambda table: pd.DataFrame(table).sort_values(first)
    return {"overall": pd.Series(overall, name="share called real"), "coarse": by_first(coarse),
            "fine": by_first(fine)}


def accounting_table(datasets):
    """Files found, loaded and skipped (by reason) per loaded dataset; `datasets`: {name: ImageSet}."""
    rows = {}
    for name, data in datasets.items():
        reasons = pd.Series([r for _, r in data.report.skipped], dtype=str).value_counts().to_dict()
        rows[name] = {"found": data.report.found, "loaded": data.report.loaded,
                      "skipped": len(data.report.skipped), **{f"skipped: {r}": n for r, n in reasons.items()}}
    return pd.DataFrame(rows).T.fillna(0).astype(int)


def images_until(steps, level):
    """Training images seen when validation accuracy first reached `level` (None if it never did)."""
    return next((s["images_seen"] for s in steps if s["val_accuracy"] >= level), None)
