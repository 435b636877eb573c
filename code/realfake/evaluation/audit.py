"""Audit a real-vs-fake dataset for shortcuts: what tells its classes apart besides what the images show.

Reads any layout the project knows: `{train,test}/{REAL,FAKE}` (CIFAKE), `test/{fake,real}` (AGIRI), or two class
folders (real/fake in any case, or `0_real`/`1_fake` as in CNNDetection) with or without split folders above them.
It reports, per split and class, the files' formats (by content), extension mismatches, modes, sizes, JPEG quality,
quantisation tables and chroma subsampling, EXIF and ICC data, file sizes; byte-identical files within a class,
across classes and across splits; and two shortcut tests, each an AUROC with a 95% bootstrap interval (train to
test where the splits exist, else cross-validated):
  (a) metadata only: a gradient-boosted classifier on the file's format, size and container facts; flagged at
      AUROC >= --threshold (0.65), naming the features that carry it (permutation importance);
  (b) colour statistics only: a linear model on global statistics of the 32 x 32 image (per-channel mean and
      spread, coarse histograms, saturation); reported, not flagged: how far colour and style alone separate them.
Metadata comes from file headers (no decoding); the 32 x 32 images from the project's decode cache.

Its command: `python code/audit.py` (--help lists the flags).
"""
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from realfake import FAKE, LABEL_NAMES, REAL
from realfake.data.datasets import load_image_files, load_image_folders
from realfake.data.duplicates import identical_files
from realfake.data.file_facts import facts_of, find_layout, read_facts
from realfake.data.imagefiles import decode_files
from realfake.metrics import bootstrap_intervals
from realfake.project import ProjectError, shown

FLAG_AUROC = 0.65
MIN_PER_CLASS = 5                   # a shortcut test's 5 cross-validation folds need one file of each class each


def metadata_features(files):
    """The metadata classifier's inputs: numbers as they are, categories one-hot (`format=PNG`)."""
    numbers = files[["bytes", "bytes_per_pixel", "width", "height", "aspect", "jpeg_quality"]].astype(float)
    flags = files[["exif", "icc", "extension_mismatch"]].astype(float)
    categories = pd.get_dummies(files[["format", "mode", "subsampling", "qtables"]].astype(str), prefix_sep="=",
                                dtype=float)
    return pd.concat([numbers, flags, categories], axis=1)


def colour_features(images):
    """Global statistics of uint8 N x 3 x 32 x 32 images: per-channel mean and spread, 8-bin histograms per channel,
    and the mean and spread of saturation."""
    x = images.numpy().reshape(len(images), 3, -1).astype(np.float32) / 255
    histograms = [(np.minimum(x[:, c] * 8, 7).astype(int)[..., None] == np.arange(8)).mean(1) for c in range(3)]
    saturation = (x.max(1) - x.min(1)) / np.maximum(x.max(1), 1e-6)
    saturation = np.stack([saturation.mean(1), saturation.std(1)], 1)
    return np.concatenate([x.mean(2), x.std(2), *histograms, saturation], 1)


def shortcut_test(features, labels, splits, model, importance=False, seed=0):
    """AUROC (95% bootstrap interval) of `model` predicting the label from `features`: trained on train and scored
    on test where both splits exist, else 5-fold cross-validated; with `importance`, how much permuting each feature
    lowers AUROC on held-out data (the test split, or half of the data)."""
    features, labels, splits = np.asarray(features, dtype=np.float64), np.asarray(labels), np.asarray(splits)
    counts = {LABEL_NAMES[c].lower(): int((labels == c).sum()) for c in (FAKE, REAL)}
    if min(counts.values()) < MIN_PER_CLASS:
        raise ProjectError(f"a shortcut test needs at least {MIN_PER_CLASS} readable files of each class (its "
                           f"5-fold cross-validation), got {counts['fake']} fake and {counts['real']} real")
    if {"train", "test"} <= set(splits):
        train, test = splits == "train", splits == "test"
        scores = model.fit(features[train], labels[train]).predict_proba(features[test])[:, 1]
        truth, held_out, held_truth = labels[test], features[test], labels[test]
    else:
        folds = StratifiedKFold(5, shuffle=True, random_state=seed)
        scores = cross_val_predict(model, features, labels, cv=folds, method="predict_proba")[:, 1]
        truth = labels
        fit_x, held_out, fit_y, held_truth = train_test_split(features, labels, test_size=0.5, stratify=labels,
                                                              random_state=seed)
        if importance:
            model.fit(fit_x, fit_y)
    result = {"auroc": float(roc_auc_score(truth, scores)), "n": int(len(truth)),
              "auroc_95": bootstrap_intervals(truth, scores, resamples=200)["auroc"]}
    if importance:
        drops = permutation_importance(model, held_out, held_truth, scoring="roc_auc", n_repeats=3, random_state=seed)
        result["importance"] = drops.importances_mean
    return result


def per_class_summary(files):
    """Per split and class: counts, formats, extension mismatches, modes, sizes, JPEG facts, EXIF/ICC, file sizes."""
    ok = files[files["error"].isna()]
    top = lambda column: lambda s: ", ".join(f"{k} {v}" for k, v in s.value_counts().head(3).items())
    table = ok.groupby(["split", "label"]).agg(
        files=("path", "size"), formats=("format", top("format")), extension_mismatches=("extension_mismatch", "sum"),
        modes=("mode", top("mode")), sizes=("width", lambda s: ", ".join(
            f"{w}x{h} {n}" for (w, h), n in ok.loc[s.index, ["width", "height"]].value_counts().head(3).items())),
        jpeg_quality=("jpeg_quality", top("jpeg_quality")), qtables=("qtables", top("qtables")),
        subsampling=("subsampling", top("subsampling")), exif=("exif", "mean"), icc=("icc", "mean"),
        median_bytes=("bytes", "median"), bytes_per_pixel=("bytes_per_pixel", "median"))
    table.index = [f"{split} {LABEL_NAMES[label]}" for split, label in table.index]
    return table


def audit(root, threshold=FLAG_AUROC, colour=True, verbose=True, real=None):
    """Audit the dataset in `root` (with `real`: its fakes against that folder of real images): a JSON-ready dict
    with the per-class summary, bad files, duplicates, both shortcut tests and the flags (empty when none)."""
    root = Path(root)
    layout = find_layout(root, real)
    files = read_facts(root, layout)
    if "error" not in files:
        files["error"] = None
    bad = files[files["error"].notna()]
    ok = files[files["error"].isna()].reset_index(drop=True)
    report = {"dataset": shown(root), "files": len(files), "bad_files": bad[["path", "error"]].values.tolist(),
              "per_class": per_class_summary(files).reset_index(names="split and class").to_dict(orient="records"),
              "duplicates": identical_files(files), "flags": []}
    meta = report["metadata_shortcut"] = metadata_test(ok, ok["label"], ok["split"])
    if meta["auroc"] >= threshold:
        report["flags"].append(metadata_flag(meta, threshold, "the classes"))
    dups = report["duplicates"]
    if dups["across_classes"]:
        report["flags"].append(f"{len(dups['across_classes'])} file(s) appear in both classes, e.g. "
                               f"{', '.join(dups['across_classes'][0])}")
    if dups["across_splits"]:
        report["flags"].append(f"{len(dups['across_splits'])} group(s) of identical files span splits "
                               f"({dups['test_files_in_train']} test files are in train), e.g. "
                               f"{', '.join(dups['across_splits'][0][:2])}")
    if colour:
        report["colour_statistics"] = colour_test(root, layout, verbose)
    return report


def metadata_test(facts, labels, splits):
    """Shortcut test (a) on the header facts of readable files, with the five features whose permutation lowers its
    AUROC most."""
    features = metadata_features(facts)
    model = HistGradientBoostingClassifier(max_iter=100, min_samples_leaf=5, random_state=0)
    meta = shortcut_test(features, labels, splits, model, importance=True)
    ranked = sorted(zip(features.columns, meta.pop("importance")), key=lambda item: -item[1])
    meta["features"] = [{"feature": name, "auroc_drop": float(drop)} for name, drop in ranked[:5] if drop > 0]
    return meta


def metadata_flag(meta, threshold, what):
    """The flag of a metadata test at or above `threshold`, naming the features that carry it."""
    named = ", ".join(f["feature"] for f in meta["features"][:3]) or "no single feature"
    return f"metadata alone separates {what}: AUROC {meta['auroc']:.3f} >= {threshold} (carried by {named})"


def colour_model():
    """Shortcut test (b)'s classifier: a standardised logistic regression on colour_features."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def compare_sets(paths, labels, images, threshold=FLAG_AUROC):
    """Shortcut tests (a) and (b), cross-validated, between two sets of readable image files that sit anywhere (a
    user's fakes and reals): `labels` REAL / FAKE per path, `images` their uint8 N x 3 x 32 x 32 decodings.
    Returns {"metadata": test (a) with its strongest features, "colour": test (b), "flag": a sentence or None,
    "not_run": None, or the one line that says why neither test ran (under MIN_PER_CLASS files on a side)}."""
    facts = pd.DataFrame(facts_of([str(p) for p in paths]))
    ok = facts["error"].isna().to_numpy() if "error" in facts else np.ones(len(facts), bool)
    labels, one_split = np.asarray(labels), np.full(len(labels), "all")
    try:
        meta = metadata_test(facts[ok].reset_index(drop=True), labels[ok], one_split[ok])
        colour = shortcut_test(colour_features(images), labels, one_split, colour_model())
    except ProjectError as e:                     # too few files: say so, and let the scoring go on
        return {"metadata": None, "colour": None, "flag": None, "not_run": f"audit not run: {e}"}
    flag = None
    if meta["auroc"] >= threshold:
        flag = (f"{metadata_flag(meta, threshold, 'the two sets')}: a detector's figures on them say little about "
                f"the images")
    return {"metadata": meta, "colour": colour, "flag": flag, "not_run": None}


def comparison_lines(checks, what="the fakes and the reals"):
    """What compare_sets found, as the lines a script prints: the two AUROCs (or why no test ran), and a warning."""
    if checks["not_run"]:
        return [checks["not_run"]]
    lines = [f"audit (cross-validated, the files alone): metadata AUROC {checks['metadata']['auroc']:.3f}, colour "
             f"statistics AUROC {checks['colour']['auroc']:.3f} between {what}"]
    return lines + ([f"WARNING: {checks['flag']}"] if checks["flag"] else [])


def audit_fake_folders(folders, reals_dir):
    """Before a user's generator output joins training (train.py --fakes): each folder's images loaded, listed
    when unreadable, and compared with real images by compare_sets. Returns ([{folder, files, loaded, skipped,
    digest}] for the model's sidecar, the lines to print). A folder with no readable image is refused in one line."""
    real_images = load_image_files(reals_dir, "reals", REAL, verbose=False)
    records, lines = [], []
    for folder in folders:
        fakes = load_image_files(folder, f"folder:{folder}", verbose=False)
        if not len(fakes):
            raise ProjectError(f"no readable image in {shown(folder)} (--fakes; {fakes.report.summary()}): give a "
                               f"folder of images")
        checks = compare_sets([*fakes.sources, *real_images.sources],
                              np.r_[np.full(len(fakes), FAKE), np.full(len(real_images), REAL)],
                              torch.cat([fakes.images, real_images.images]))
        lines += [f"{shown(folder)}: {fakes.report.summary()}",
                  *comparison_lines(checks, f"{shown(folder)} and {shown(reals_dir)} ({len(real_images)} images)"),
                  *[f"skipped {shown(path)}: {reason}" for path, reason in fakes.report.skipped]]
        records.append({"folder": shown(folder), "files": fakes.report.found, "loaded": fakes.report.loaded,
                        "skipped": len(fakes.report.skipped),
                        "digest": hashlib.sha1(np.sort(fakes.digests).tobytes()).hexdigest()[:16],
                        "audit": {"metadata_auroc": (checks["metadata"] or {}).get("auroc"),
                                  "colour_auroc": (checks["colour"] or {}).get("auroc"), "flag": checks["flag"]}})
    return records, lines


def colour_test(root, layout, verbose=True):
    """Shortcut test (b) on the 32 x 32 images: read through the project's decode cache where the class folders sit
    in the dataset's own layout, decoded afresh (all cores) for a real folder from elsewhere."""
    features, labels, splits = [], [], []
    for split in dict.fromkeys(split for split, _, _ in layout):
        folders = {label: folder for s, label, folder in layout if s == split}
        if all(folder.parent == (root if split == "all" else root / split) for folder in folders.values()):
            data = load_image_folders(root, "" if split == "all" else split, root.name, "audit",
                                      labels=tuple(folders), verbose=verbose)
            images, split_labels = data.images, data.labels.numpy()
        else:
            decoded = [(label, decode_files(sorted(p for p in folder.iterdir() if p.is_file()))[0])
                       for label, folder in folders.items()]
            images = torch.cat([d for _, d in decoded])
            split_labels = np.concatenate([[label] * len(d) for label, d in decoded])
        features.append(colour_features(images))
        labels.append(split_labels)
        splits.append([split] * len(split_labels))
    features, labels, splits = np.concatenate(features), np.concatenate(labels), np.concatenate(splits)
    return shortcut_test(features, labels, splits, colour_model())


def summary_lines(report):
    """The console summary: flags first, then the two tests, duplicates and bad files."""
    meta, colour = report["metadata_shortcut"], report.get("colour_statistics")
    interval = lambda r: f"{r['auroc']:.3f} (95% interval {r['auroc_95'][0]:.3f}-{r['auroc_95'][1]:.3f}, n = {r['n']})"
    lines = [f"audit of {report['dataset']}: {report['files']} files, {len(report['bad_files'])} unreadable"]
    lines += [f"FLAG: {flag}" for flag in report["flags"]] or ["no shortcut flagged"]
    lines.append(f"(a) metadata only: AUROC {interval(meta)}; strongest features: " +
                 (", ".join(f"{f['feature']} (-{f['auroc_drop']:.3f})" for f in meta["features"]) or "none"))
    if colour:
        lines.append(f"(b) colour statistics only (reported, not flagged): AUROC {interval(colour)}")
    dups = report["duplicates"]
    lines.append(f"duplicates: {dups['groups']} groups of byte-identical files ({dups['files_in_groups']} files); "
                 f"{len(dups['across_classes'])} across classes, {len(dups['across_splits'])} across splits, "
                 f"{dups['test_files_in_train']} test files also in train")
    lines += [f"unreadable: {path}: {reason}" for path, reason in report["bad_files"]]
    return lines


def markdown(report):
    """The audit as Markdown: the summary, then the per-class table."""
    table = pd.DataFrame(report["per_class"]).set_index("split and class")
    return "\n".join([f"# Dataset audit: {report['dataset']}", "", *[f"- {line}" for line in summary_lines(report)],
                      "", table.to_markdown(), ""])
