"""The transfer matrix: what a detector learns from each training set, with and without a pretrained backbone, and
where it carries over.

Rows are {StrongCNN from scratch at 32 px, the ImageNet-pretrained backbone} x {trained on CIFAKE, on the AGIRI
subset's training folds, on both}. "Both" is the AGIRI training folds and as many CIFAKE training images again (a
seeded, class-stratified draw), so that neither set outweighs the other. The CIFAKE rows are the models trained for
that set (strong_model, pretrained_model) and the pretrained AGIRI row is agiri_model; the rest are trained here,
once per seed: SEEDS where one run costs under SEEDED_UNDER seconds, else one. The AGIRI held-out fold is the one
agiri_model's sidecar names; nothing is chosen on it or on any other column.

Every row is scored on the same images: EVAL_PER_CLASS drawn per class (seed 0) from each scoring set, since a
224 px model reads only about 40 images a second on a CPU. reproduce.py turns matrix.json into the table and figure.

Its command: `python code/matrix.py` (--help lists the flags).
"""
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from classes import development_sets, load_agiri, load_cifake, load_cifar100
from realfake import FAKE, REAL
from realfake.data import file_facts
from realfake.data.duplicates import duplicate_groups
from realfake.data.splits import split_train_val
from realfake.metrics import figures_with_intervals, probability, rank_auroc
from realfake.models.checkpoints import load_model, read_sidecar
from realfake.models.inference import dataset_logits, temperature_of
from realfake.project import (
    ProjectError,
    atomic_write_bytes,
    cifake_root,
    dataset_dir,
    git_commit,
    machine_description,
    model_file,
    shown,
)
from realfake.training import pretrained
from realfake.training.loop import train_model
from realfake.training.recipes import RECIPES, SAMPLE_EPOCHS

EVAL_PER_CLASS = 1000               # images per class drawn from each scoring set (all of a smaller class)
SEEDS, SEEDED_UNDER = (0, 1, 2), 300   # three seeds for rows whose run costs under 300 s, else seed 0 alone
BACKBONES = ("scratch", "pretrained")
TRAINING_SETS = ("CIFAKE", "AGIRI", "both")
SHIPPED_ROWS = {("scratch", "CIFAKE"): "strong_model", ("pretrained", "CIFAKE"): "pretrained_model",
                ("pretrained", "AGIRI"): "agiri_model"}
SCRATCH = dict(arch="strong", recipe="strong")  # the scratch rows' network and recipe (strong_model's)
TRAIN_ARGS = {"strong_model": "--arch strong --recipe strong", "pretrained_model": "--arch pretrained",
              "agiri_model": "--arch pretrained --dataset agiri"}       # what makes each model the rows read


COLUMNS = {  # column: (scoring set, what is measured)
    "CIFAKE test AUROC": ("cifake", "auroc"), "AGIRI held-out AUROC": ("agiri", "auroc"),
    "AGIRI held-out AUROC, JPEG fakes": ("agiri jpeg", "auroc"), "faces AUROC": ("faces", "auroc"),
    "DDPM-32 AUROC": ("ddpm-cifar10-32", "auroc"), "CIFAR-100 share called real": ("cifar100", "called real"),
    "six generators' mean AUROC": ("generators", "auroc")}


IN_DOMAIN = {"CIFAKE": ("CIFAKE test AUROC",), "AGIRI": ("AGIRI held-out AUROC", "AGIRI held-out AUROC, JPEG fakes")}
IN_DOMAIN["both"] = IN_DOMAIN["CIFAKE"] + IN_DOMAIN["AGIRI"]


def draw(dataset, per_class=EVAL_PER_CLASS, seed=0):
    """A seeded draw of up to `per_class` images of each label, in file order."""
    rng, labels = np.random.default_rng(seed), dataset.labels.numpy()
    keep = [rng.permutation(np.flatnonzero(labels == label))[:per_class] for label in (REAL, FAKE)]
    return dataset.subset(np.sort(np.concatenate(keep)))


def agiri_fold(root, sidecar, preprocess):
    """(training folds, held-out fold, each held-out file's format) of the AGIRI subset, as agiri_model's sidecar
    split it, decoded at 32 px ("resize") or full size ("full")."""
    data = load_agiri(root, preprocess=preprocess, verbose=False, name="AGIRI subset")
    held = set(sidecar["held_out"]["files"])
    missing = held - set(data.sources)
    if missing:
        raise ProjectError(f"{len(missing)} held-out files of agiri_model are not in {shown(root)} (first: "
                           f"{sorted(missing)[0]}): give the folder it was trained on")
    is_held = np.array([source in held for source in data.sources])
    formats = np.array([f.get("format") for f in file_facts.facts_of([str(root / s) for s in data.sources])])
    return data.subset(~is_held), data.subset(is_held), formats[is_held]


def scoring_sets(sample, agiri_sidecar, cifake):
    """{name: {"resize": ImageSet at 32 px, "full": the same images at full size}} for every column's scoring set
    (`cifake`: CIFAKE's test split, which its column samples), and the AGIRI subset's training folds in both
    decodings."""
    cifake_reals = draw(cifake.subset(cifake.labels == REAL))
    fakes, _ = development_sets(cifake_root(sample=sample), dataset_dir("ddpm32_dir", sample),
                                dataset_dir("generators32_dir", sample))
    sets = {"cifake": draw(cifake), "cifar100": draw(load_cifar100(dataset_dir("CIFAR100_dir", sample), verbose=False))}
    sets.update({name: draw(generated).join(cifake_reals, name) for name, generated in fakes.items()})
    sets = {name: {"resize": data, "full": data} for name, data in sets.items()}
    folds = {}
    for preprocess in ("resize", "full"):
        train, held, formats = agiri_fold(dataset_dir("agiri_subset_dir", sample), agiri_sidecar, preprocess)
        keep = (held.labels.numpy() == REAL) | (formats == "JPEG")
        folds[preprocess] = train
        sets.setdefault("agiri", {})[preprocess] = held
        sets.setdefault("agiri jpeg", {})[preprocess] = held.subset(keep)
        sets.setdefault("faces", {})[preprocess] = draw(load_agiri(dataset_dir("faces_dir", sample), preprocess,
                                                                   verbose=False, name="faces"))
    return sets, folds, list(fakes)


def cifake_draw(n, seed, sample):
    """n CIFAKE training images, class-stratified and seeded: the CIFAKE half of "both"."""
    data = load_cifake(cifake_root(sample=sample), "train", verbose=False)
    return draw(data, per_class=n // 2, seed=seed + 1)


def upsampled(data, side):
    """An ImageSet at side x side (bilinear, rounded to uint8), so that 32 px images can join full-size ones."""
    if data.images.shape[-1] == side:
        return data
    images = F.interpolate(data.images.float(), size=(side, side), mode="bilinear", align_corners=False)
    return replace(data, images=images.round().clamp(0, 255).to(torch.uint8))


def near_duplicates(data):
    """Duplicate groups of a training set (byte- or near-identical, as agiri_model's fold groups them), so that its
    validation split holds no copy of a training image."""
    return duplicate_groups(data.images, data.digests)


def train_scratch(train_set, seed, sample, device):
    """StrongCNN with the strong recipe (SAMPLE_EPOCHS on the sample data), its threshold and temperature from a
    validation split of its own training set."""
    recipe = RECIPES[SCRATCH["recipe"]]
    recipe = replace(recipe, seed=seed, epochs=min(recipe.epochs, SAMPLE_EPOCHS) if sample else recipe.epochs)
    fit, val = split_train_val(train_set, recipe.val_fraction, seed, near_duplicates(train_set))
    model, history = train_model(fit, val, recipe, SCRATCH["arch"], device=device, progress=False)
    return model, history["threshold"]


def train_pretrained_both(train_set, agiri_sidecar, seed, device):
    """The pretrained backbone trained on `train_set` (full-size images) with the option agiri_model's
    cross-validation chose, its threshold and temperature from a validation split of `train_set`."""
    from realfake.metrics import calibration_figures
    from realfake.models.backbone import build_backbone
    option = next(o for o in pretrained.choices() if o.name == agiri_sidecar["choice"])
    size = agiri_sidecar["image_size"]
    fit, val = split_train_val(train_set, 0.1, seed, near_duplicates(train_set))
    features = pretrained.Features(build_backbone(agiri_sidecar["backbone"]), fit, size, device, seed)
    index = np.arange(len(fit))
    if option.finetune:
        fronts, y = features.augmented(index, option.augment, option.finetune)
        model = pretrained.finetune_model(agiri_sidecar["backbone"], size, fronts, y, seed, blocks=option.finetune)
    else:
        pooled, y = features.augmented(index, option.augment)
        taps = pretrained.FEATURE_SETS[option.features]
        model = pretrained.probe_model(agiri_sidecar["backbone"], size, taps,
                                       pretrained.fit_probe(pooled, y, taps, option.C, seed))
    calibrated = calibration_figures(val.labels.numpy(), row_logits(model, val, device))
    model.temperature = calibrated["temperature"]
    return model, calibrated["threshold"]


def row_logits(model, data, device):
    """A model's logits on an ImageSet: a pretrained detector through the feature cache, any other network directly."""
    if getattr(model, "config", {}).get("arch") == "pretrained":
        return pretrained.cached_logits(model, data, device)
    return dataset_logits(model, data, device)


def score_row(model, threshold, sets, generators, device):
    """{column: figure} of one model on every scoring set (pretrained models read full-size images)."""
    decoding = "full" if getattr(model, "config", {}).get("arch") == "pretrained" else "resize"
    figures = {}
    for name, decoded in sets.items():
        data = decoded[decoding]
        scores = probability(row_logits(model, data, device), temperature_of(model))
        labels = data.labels.numpy()
        figures[name] = {"auroc": float(rank_auroc(labels, scores)) if len(np.unique(labels)) == 2 else None,
                         "called real": float((scores >= threshold).mean()), "n": len(data)}
    figures["generators"] = {"auroc": float(np.mean([figures[g]["auroc"] for g in generators]))}
    return {column: figures[where][what] for column, (where, what) in COLUMNS.items()}


def make_sample_models(paths):
    """On the sample data, the shipped models the matrix reads, trained (tiny) where missing."""
    from realfake.training.loop import train_or_load, train_sample_pretrained
    train_or_load(SHIPPED_ROWS["scratch", "CIFAKE"], sample=True)
    for dataset, row in (("cifake", ("pretrained", "CIFAKE")), ("agiri", ("pretrained", "AGIRI"))):
        if not paths[row].is_file():
            train_sample_pretrained(dataset, paths[row])


def cifake_test_figures(paths, test, device, kept=None):
    """The CIFAKE-trained shipped models on all of CIFAKE's test split, at their validation thresholds, with 95%
    intervals: pretrained_model beside strong_model (and the published anchors, in the README). `kept`: the figures
    of unchanged models, from the last results file. `test`: CIFAKE's test split."""
    figures = dict(kept or {})
    for backbone in BACKBONES:
        path = paths[backbone, "CIFAKE"]
        if path.stem in figures:
            continue
        model, _ = load_model(path, device)
        sidecar = read_sidecar(path)
        scores = probability(row_logits(model, test, device), temperature_of(model))
        figures[path.stem] = {**figures_with_intervals(test.labels.numpy(), scores, sidecar["threshold"]),
                              "validation AUROC": sidecar["validation"]["auroc"],
                              "choice": sidecar.get("choice", sidecar.get("recipe")),
                              "ships": sidecar.get("ships", True), "training seconds": sidecar["wall_seconds"],
                              "parameters": sidecar["parameters"],
                              "trained parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
                              "time": sidecar.get("time")}
    return figures


def summary(result):
    """{row label: the row's backbone, training set, seeds, each column's mean over seeds and its sd (None with one
    seed), the model and training seconds}."""
    rows = {}
    for (backbone, trained_on), group in pd.DataFrame(result["runs"]).groupby(["backbone", "trained on"],
                                                                              sort=False):
        n = len(group)
        rows[f"{backbone}, trained on {trained_on}"] = {
            "backbone": backbone, "trained on": trained_on, "seeds": n,
            "model": group.iloc[0]["model"] if n == 1 else f"trained by matrix.py, {n} seeds",
            **{column: float(group[column].mean()) for column in COLUMNS},
            **{f"{column} sd": float(group[column].std(ddof=1)) if n > 1 else None for column in COLUMNS},
            "training seconds": float(group["training seconds"].mean())}
    return rows


def table(rows, bold="**"):
    """The matrix as strings: each cell the mean, ± the sd over seeds where there are several; in-domain cells
    (trained on that set's own training data) between `bold` marks."""
    def cell(row, column):
        text = f"{row[column]:.3f}" + (f" ± {row[column + ' sd']:.3f}" if row["seeds"] > 1 else "")
        return f"{bold}{text}{bold}" if column in IN_DOMAIN[row["trained on"]] else text
    return pd.DataFrame({label: {"seeds": str(row["seeds"]), **{column: cell(row, column) for column in COLUMNS}}
                         for label, row in rows.items()}).T


def row_runs(row, paths, folds, sets, generators, agiri_sidecar, commit, sample, device):
    """The runs of one row (backbone, training set): its shipped model's, scored once, or a model trained here for
    each of SEEDS (seed 0 alone when that run costs SEEDED_UNDER seconds or more), each scored on every column."""
    backbone, trained_on = row
    runs = []
    for seed in SEEDS:
        began = time.perf_counter()
        if row in paths:
            model, _ = load_model(paths[row], device)
            sidecar = read_sidecar(paths[row])
            threshold, seconds, source = sidecar["threshold"], sidecar["wall_seconds"], paths[row].name
        else:
            train_set = folds["full" if backbone == "pretrained" else "resize"]
            if trained_on == "both":
                extra = upsampled(cifake_draw(len(train_set), seed, sample), train_set.images.shape[-1])
                train_set = train_set.join(extra, "both")
            model, threshold = (train_pretrained_both(train_set, agiri_sidecar, seed, device)
                                if backbone == "pretrained" else train_scratch(train_set, seed, sample, device))
            seconds, source = time.perf_counter() - began, "trained by matrix.py"
        figures = score_row(model, threshold, sets, generators, device)
        runs.append({"backbone": backbone, "trained on": trained_on, "seed": seed, "model": source,
                     "training seconds": round(seconds, 1), "threshold": float(threshold), "git_commit": commit,
                     **figures})
        print(f"{backbone} x {trained_on}, seed {seed}: " + ", ".join(
            f"{k} {v:.4f}" for k, v in figures.items() if v is not None))
        if row in paths or seconds >= SEEDED_UNDER:
            break                                  # one run: shipped, or too dear for three
    return runs


def unchanged(figures, sidecar):
    """Whether a shipped model's figures in the last results file came from the model its sidecar describes now: a
    retrained model has another training time and, almost surely, another threshold or validation AUROC."""
    seconds = figures["training seconds"]
    same_time = seconds == round(sidecar["wall_seconds"], 1) or seconds == sidecar["wall_seconds"]
    if "threshold" in figures:                                  # a run; else a "cifake test" entry
        return same_time and figures["threshold"] == float(sidecar["threshold"])
    return same_time and figures["validation AUROC"] == sidecar["validation"]["auroc"]


def refuse_missing(missing):
    """One line naming the shipped models the matrix must read but cannot find, and how to make the first."""
    if missing:
        first = missing[0].stem
        raise ProjectError(f"the matrix scores the models its CIFAKE and AGIRI rows name; missing "
                           f"{', '.join(shown(p) for p in missing)}: train {first} with `python code/train.py "
                           f"{TRAIN_ARGS[first]} -mf {first}` (or restore models/ from git)")


def kept_figures(path, scoring_sets, sidecars):
    """What --keep-trained keeps from the results file at `path`, provided it was scored on the same images as now
    (`scoring_sets`: each set's counts): ({row: its runs} of the rows matrix.py trained and of the shipped models
    `sidecars` ({name: sidecar}) still describe, {name: CIFAKE test figures} of those models). Each run keeps the
    commit it was made at (the file's, for runs recorded before runs carried their own)."""
    if not path.is_file():
        raise ProjectError(f"--keep-trained keeps the trained rows of {shown(path)}, which is missing: run "
                           f"python code/matrix.py once without it")
    last = json.loads(path.read_text())
    if last["scoring sets"] != scoring_sets or last["eval per class"] != EVAL_PER_CLASS:
        raise ProjectError(f"--keep-trained: {shown(path)} was scored on other images than the sets hold now "
                           f"(data or EVAL_PER_CLASS changed); run python code/matrix.py without it")
    kept = {}
    for run in last["runs"]:
        name = Path(run["model"]).stem
        if run["model"] == "trained by matrix.py" or name in sidecars and unchanged(run, sidecars[name]):
            kept.setdefault((run["backbone"], run["trained on"]), []).append(
                {**run, "git_commit": run.get("git_commit", last["git_commit"])})
    return kept, {name: figures for name, figures in last["cifake test"].items()
                  if name in sidecars and unchanged(figures, sidecars[name])}


def run_matrix(out, sample=False, device="cpu", keep_trained=False):
    """Every row trained (or its shipped model loaded) and scored on every column, written to `out`
    (matrix.json); with `keep_trained`, only the shipped models retrained since the last `out` are scored again,
    every other run is kept with its commit."""
    started, commit = time.perf_counter(), git_commit()
    paths = {row: model_file(name, sample) for row, name in SHIPPED_ROWS.items()}
    if sample:
        make_sample_models(paths)
    if not keep_trained:
        refuse_missing([p for p in paths.values() if not p.is_file()])
    agiri_sidecar = read_sidecar(paths["pretrained", "AGIRI"])
    cifake_test = load_cifake(cifake_root(sample=sample), "test", verbose=False)   # decoded once, used twice
    sets, folds, generators = scoring_sets(sample, agiri_sidecar, cifake_test)
    counts = {name: {"n_real": int((d["resize"].labels == REAL).sum()),
                     "n_fake": int((d["resize"].labels == FAKE).sum())} for name, d in sets.items()}
    kept, kept_cifake = ({}, {}) if not keep_trained else kept_figures(
        out, counts, {p.stem: read_sidecar(p) for p in paths.values()})
    refuse_missing([p for row, p in paths.items() if not p.is_file() and (
        row not in kept or row[1] == "CIFAKE" and p.stem not in kept_cifake)])     # an unchanged model is not read
    runs = []
    for row in ((backbone, trained_on) for backbone in BACKBONES for trained_on in TRAINING_SETS):
        runs += kept.get(row) or row_runs(row, paths, folds, sets, generators, agiri_sidecar, commit, sample,
                                          device)
    result = {"runs": runs, "cifake test": cifake_test_figures(paths, cifake_test, device, kept_cifake),
              "columns": list(COLUMNS), "in-domain": IN_DOMAIN, "seeds": list(SEEDS),
              "seeded under seconds": SEEDED_UNDER, "eval per class": EVAL_PER_CLASS,
              "scoring sets": counts,
              "n AGIRI training folds": len(folds["full"]), "sample_data": sample, "git_commit": commit,
              "device": machine_description(device), "torch": torch.__version__,
              "wall_seconds": round(time.perf_counter() - started, 1)}
    atomic_write_bytes(out, (json.dumps(result, indent=2) + "\n").encode())
    print(f"wrote {shown(out)} ({len(runs)} runs, {time.perf_counter() - started:.0f} s)")
    return result
