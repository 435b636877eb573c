"""Audit a real-vs-fake dataset for shortcuts: what tells its classes apart besides what the images show.

    python code/audit.py data/CIFAKE --json audit.json --markdown audit.md
    python code/audit.py my_dataset --fail-on-shortcut         # exit code 3 when a shortcut is flagged (for CI)

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
"""
import functools
import hashlib
import io
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pandas as pd
import torch
from PIL import Image, JpegImagePlugin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import cli
from classes import FAKE, LABEL_NAMES, REAL, load_image_files, load_image_folders
from evaluate import bootstrap_intervals
from imagefiles import decode_files, list_files, skip_reason
from project import ProjectError, shown

FLAG_AUROC = 0.65
MIN_PER_CLASS = 5                   # a shortcut test's 5 cross-validation folds need one file of each class each
CLASS_FOLDERS = {"real": REAL, "0_real": REAL, "fake": FAKE, "1_fake": FAKE}
EXTENSIONS = {"JPEG": {".jpg", ".jpeg", ".jpe"}, "PNG": {".png"}, "WEBP": {".webp"}, "GIF": {".gif"},
              "BMP": {".bmp"}, "TIFF": {".tif", ".tiff"}}
# The IJG / JPEG Annex K luminance table (natural order): libjpeg scales it by quality; we invert that to estimate it.
IJG_LUMINANCE = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69,
                          56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104,
                          113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])
IJG_TABLES = np.stack([np.clip((IJG_LUMINANCE * (5000 / q if q < 50 else 200 - 2 * q) + 50) // 100, 1, 255)
                       for q in range(1, 101)])                                    # row q - 1: quality q


def find_layout(root, real=None):
    """[(split, label, folder)] for a dataset folder; one clear error for an unknown layout. `real`: a folder of real
    images from elsewhere, for a dataset of fakes only (the DDPM-32 samples against CIFAKE's test/REAL)."""
    root = Path(root)
    if not root.is_dir():
        raise ProjectError(f"{shown(root)} is not a folder: give the dataset's folder")
    classes = lambda folder: {CLASS_FOLDERS[p.name.lower()]: p for p in sorted(folder.iterdir())
                              if p.is_dir() and p.name.lower() in CLASS_FOLDERS}
    if real is not None:
        if FAKE not in classes(root) or not Path(real).is_dir():
            raise ProjectError(f"with --real, {shown(root)} must hold a fake/ folder and {real} must be a folder")
        return [("all", REAL, Path(real)), ("all", FAKE, classes(root)[FAKE])]
    if len(classes(root)) == 2:
        return [("all", label, folder) for label, folder in sorted(classes(root).items())]
    layout = [(split.name, label, folder) for split in sorted(root.iterdir()) if split.is_dir()
              and len(classes(split)) == 2 for label, folder in sorted(classes(split).items())]
    if not layout:
        raise ProjectError(f"{shown(root)}: expected two class folders (real and fake, any case, or 0_real and "
                           f"1_fake), directly or inside split folders such as train/ and test/")
    return layout


@functools.lru_cache(maxsize=256)                    # datasets reuse a few tables: estimate each once
def jpeg_quality(table):
    """The IJG quality (1-100) whose scaled luminance table is closest to `table` (a tuple in natural order)."""
    return int(np.abs(IJG_TABLES - np.asarray(table)).sum(1).argmin()) + 1


def file_facts(path):
    """Header facts of one file (no pixel decoding), or {"error": reason}."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return {"error": f"unreadable ({type(e).__name__})"}
    facts = {"bytes": len(data), "digest": hashlib.blake2b(data, digest_size=8).hexdigest()}
    if not data:
        return {**facts, "error": "zero bytes"}
    try:
        with Image.open(io.BytesIO(data)) as img:
            facts.update(format=img.format, mode=img.mode, width=img.width, height=img.height,
                         exif=bool(img.getexif()), icc="icc_profile" in img.info, jpeg_quality=-1, qtables="none",
                         subsampling="none")
            if img.format == "JPEG" and img.quantization:
                tables = [np.asarray(img.quantization[k]) for k in sorted(img.quantization)]
                facts.update(jpeg_quality=jpeg_quality(tuple(tables[0])),
                             subsampling=str(JpegImagePlugin.get_sampling(img)),
                             qtables=hashlib.sha1(np.concatenate(tables).astype(np.uint16).tobytes()).hexdigest()[:8])
    except Exception as e:                             # any header a reader rejects skips this file only
        return {**facts, "error": skip_reason(e)}
    suffix = Path(path).suffix.lower()
    facts["extension_mismatch"] = suffix not in EXTENSIONS.get(facts["format"], {suffix})
    facts["bytes_per_pixel"] = facts["bytes"] / (facts["width"] * facts["height"])
    facts["aspect"] = facts["width"] / facts["height"]
    return facts


def _facts_chunk(paths):
    return [file_facts(p) for p in paths]


def read_facts(root, layout, workers=None):
    """One row per file found: split, label, path, and its header facts (errors in `error`)."""
    rows = [{"split": split, "label": label, "file": folder / rel.lstrip("/")}
            for split, label, folder in layout for rel, _, _ in list_files(folder, "")]
    paths = [str(row.pop("file")) for row in rows]
    for row, path in zip(rows, paths):
        inside = Path(path).is_relative_to(root)
        row["path"] = str(Path(path).relative_to(root)) if inside else shown(path)
    return pd.DataFrame([{**row, **f} for row, f in zip(rows, facts_of(paths, workers))])


def facts_of(paths, workers=None):
    """file_facts of every path, on all cores."""
    chunk = max(256, len(paths) // (8 * (workers or os.cpu_count() or 1)) + 1)
    with ProcessPoolExecutor(workers) as pool:
        return [f for part in pool.map(_facts_chunk, [paths[i:i + chunk] for i in range(0, len(paths), chunk)])
                for f in part]


def identical_files(files):
    """Byte-identical files: groups (2 or more copies anywhere), and the groups that span classes or splits."""
    ok = files[files["digest"].notna()]
    copies = ok["digest"].map(ok["digest"].value_counts())
    groups = ok[copies > 1].groupby("digest")
    across_classes = [list(g["path"]) for _, g in groups if g["label"].nunique() > 1]
    across_splits = [list(g["path"]) for _, g in groups if g["split"].nunique() > 1]
    if "train" in set(files["split"]) and "test" in set(files["split"]):
        train = set(ok.loc[ok["split"] == "train", "digest"])
        leaked = int(ok.loc[ok["split"] == "test", "digest"].isin(train).sum())
    else:
        leaked = 0
    return {"groups": groups.ngroups, "files_in_groups": int(sum(len(g) for _, g in groups)),
            "across_classes": across_classes, "across_splits": across_splits, "test_files_in_train": leaked}


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


def main(argv=None):
    parser = cli.parser(__doc__, sample=False)
    parser.add_argument("dataset", help="the dataset's folder")
    parser.add_argument("--real", metavar="DIR", help="real images from elsewhere, for a dataset of fakes only")
    parser.add_argument("--threshold", type=float, default=FLAG_AUROC, help="flag metadata AUROC at or above this")
    parser.add_argument("--json", metavar="PATH", help="write the whole audit as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="write the audit as Markdown")
    parser.add_argument("--fail-on-shortcut", action="store_true", help="exit with code 3 when anything is flagged")
    args = cli.parse(parser, argv)
    report = audit(args.dataset, args.threshold, real=args.real)
    print("\n".join(summary_lines(report)))
    if args.json:
        cli.write_json(args.json, report)
    if args.markdown:
        Path(args.markdown).write_text(markdown(report))
        print(f"wrote {args.markdown}")
    return 3 if args.fail_on_shortcut and report["flags"] else 0


if __name__ == "__main__":
    cli.run(main)
