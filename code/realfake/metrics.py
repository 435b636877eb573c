"""Figures computed from labels and scores alone: accuracy, confusion, per-class precision, recall and F1, AUROC and AP
at a threshold, bootstrap intervals, calibration (temperature, expected calibration error, the threshold chosen on
validation), threshold sweeps and shares per group. All from scikit-learn and scipy, tabled with pandas."""

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize_scalar
from scipy.stats import rankdata
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from realfake import FAKE, LABEL_NAMES, REAL

SWEEP_THRESHOLDS = tuple(round(t, 1) for t in np.arange(0.1, 0.95, 0.1))
ECE_BINS = 15                       # equal-width bins of the confidence in the call
BOOTSTRAP_RESAMPLES = 1000          # resamples of the test images behind every 95% interval
MIN_PER_CLASS_FOR_INTERVAL = 5      # fewer images of a class than this: no interval (a handful of values is not one)


def probability(logits, temperature=1.0):
    """P(real) = sigmoid(logit / temperature), in float64: float32 rounds confident scores to exactly 0 or 1, and
    the ties it makes would blur AUROC at the fourth decimal."""
    return torch.sigmoid(torch.as_tensor(logits, dtype=torch.float64) / temperature).numpy()


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


def evaluate_scores(labels, scores, threshold):
    """Every figure of scores against labels at `threshold`, with ECE and the threshold sweep: (JSON-ready dict,
    the sweep table)."""
    result = score_at_threshold(labels, scores, threshold)
    result["ece"] = expected_calibration_error(labels, scores)
    sweep = threshold_sweep(labels, scores)
    result["sweep"] = sweep.to_dict(orient="records")
    return result, sweep


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


def images_until(steps, level):
    """Training images seen when validation accuracy first reached `level` (None if it never did)."""
    return next((s["images_seen"] for s in steps if s["val_accuracy"] >= level), None)
