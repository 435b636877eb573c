"""Scoring a model on datasets and on image files: the figures test.py reports for a CIFAKE split, for a folder of a
user's generated images against reals, for CIFAR-100 (all real), and for the development generators against
CIFAKE's test reals."""

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from realfake import FAKE, LABEL_NAMES, REAL
from realfake.data.datasets import AGIRI_MAX_PIXELS
from realfake.data.imagefiles import (
    FULL_SIZE,
    FULL_SIZE_DECODINGS,
    IMAGE_SIZE,
    crops_per_image,
    decode_files,
)
from realfake.metrics import (
    bootstrap_intervals,
    evaluate_scores,
    score_at_threshold,
    share_called_real,
)
from realfake.models.inference import predict_scores, predict_verdicts, score_dataset
from realfake.project import ProjectError


def score_files(model, files, threshold, preprocess="resize", device="cpu", model_name="model", gives_verdicts=True):
    """P(real), the label at `threshold` and the verdict for image files of any size and format: (table with one row
    per readable file, `in_domain` when it is stored at 32 x 32 as the models' training images were, or for a
    full-size model (preprocess "full" or "native") when its short side is FULL_SIZE (224 px) or more; [(file, reason)]
    for the others; the decoded uint8 images). The verdict is a model's own where it has a band (photo_model: fake,
    real or uncertain, inference.predict_verdicts); else the label where the image is in the model's domain and
    'uncertain' where it is not; 'uncertain' throughout when the model does not give verdicts (`gives_verdicts`
    False: rules.PHOTO_RULE)."""
    images, ok, failed, _, sizes = decode_files(files, preprocess, AGIRI_MAX_PIXELS, desc="reading images")
    in_domain = (((sizes[ok].min(1) >= FULL_SIZE) if preprocess in FULL_SIZE_DECODINGS else
                  (sizes[ok] == IMAGE_SIZE).all(1)) if ok else np.zeros(0, bool))
    if getattr(model, "ood_components", 0):
        scores, verdict = predict_verdicts(model, images, device)
    else:
        scores = predict_scores(model, images, device, crops_per_image=crops_per_image(preprocess))
        verdict = np.where(in_domain, np.where(scores >= threshold, "real", "fake"), "uncertain")
    table = pd.DataFrame({"path": [str(files[i]) for i in ok], "p_real": scores,
                          "label": [LABEL_NAMES[int(s >= threshold)] for s in scores],
                          "verdict": verdict if gives_verdicts else "uncertain", "model": model_name,
                          "threshold": threshold, "preprocess": preprocess, "in_domain": in_domain})
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


def leaked_test_images(test_set, train_set):
    """Boolean mask of test images whose file is byte-identical to some training file."""
    return np.isin(test_set.digests, train_set.digests)


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


def evaluate_fakes(model, fake_files, real_files, threshold, device="cpu", model_name="model", preprocess="resize"):
    """Does the model catch these generated images? Scores image files of any format, decoded as the model takes
    them (`preprocess`: "resize" to 32 x 32 for the small networks, "full" for the full-size model), as FAKE against
    real image files: (every figure as a JSON-ready dict, with n_fake, n_real, the shares of fakes caught
    and of reals kept, 95% bootstrap intervals and `skipped` [(file, reason)]; the per-file table; the decoded
    images). Raises ProjectError when either side has no readable image."""
    table, skipped, images = score_files(model, [*fake_files, *real_files], threshold, preprocess, device,
                                         model_name)
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
    result.update(preprocess=preprocess, n_fake=int((labels == FAKE).sum()), n_real=int((labels == REAL).sum()),
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
