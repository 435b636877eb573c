"""Which training choices make a small detector catch generators it never saw? Two studies, one file of runs.

Each variant is a recipe (recipes.RECIPES) on an architecture. Every run trains on CIFAKE's training split (less
its validation split) and is scored on the CIFAKE test set, on each development generator's images against
CIFAKE's 10,000 test reals (AUROC, AP), and on the DDPM faces against CelebA-HQ (resized, and the best of the two
native-resolution crops). The development generators only compare variants: they never fit a weight or a threshold.
Variants that train on a half of one generator (protocol "plus one generator", and the oracles) are scored on the
other half of it. The benchmark (--protocol floor, logo, lofo, oracle) trains the fast recipe on CIFAKE and every
development generator but the held-out one (or family), each source an equal share of the fakes unless a variant
says otherwise, and scores what was held out; a new folder in data/generators32/ joins it with nothing else to
change. Protocol own trains on CIFAKE and the project's own generators, every development generator unseen;
`python code/zeroshot.py` adds a detector that never sees a fake to the same file. `python code/reproduce.py` turns
the file into the results tables.

Its command: `python code/variants.py` (--help lists the flags).
"""
import json
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from classes import development_sets, load_agiri, load_cifake
from realfake.data.datasets import family_of, generator_folders
from realfake.data.imagefiles import PREPROCESSINGS
from realfake.data.splits import split_train_val
from realfake.evaluation.scoring import DEV_GENERATORS, generator_figures
from realfake.metrics import probability, score_at_threshold
from realfake.models.checkpoints import read_sidecar
from realfake.models.generators import MODELS as OWN_MODELS
from realfake.models.inference import score_dataset
from realfake.models.networks import count_parameters
from realfake.project import (
    ProjectError,
    atomic_write_bytes,
    dataset_dir,
    git_commit,
    machine_description,
    model_file,
    shown,
)
from realfake.training import pretrained
from realfake.training.loop import train_model
from realfake.training.pools import training_pool
from realfake.training.recipes import RECIPES, SAMPLE_EPOCHS

# name: (recipe, architecture, its keywords). One change at a time from the `fast` base CNN, then the oracles.
VARIANTS = {name: (name, "cnn", {}) for name in (
    "fast", "fast_gray", "fast_standardise", "fast_jitter", "fast_highpass", "fast_npr", "fast_spectrum",
    "fast_patchshuffle", "fast_resample", "fast_autoencoder", "fast_autoencoder_tconv", "fast_made", "fast_plus_ddpm",
    "fast_oracle_ddpm", "fast_oracle_gan")}
VARIANTS["patch/fast"] = ("fast", "patch", {})


# The best change carried to the strong architecture (one seed: a 30-minute run), and its oracles.
STRONG = {"widths": (32, 64, 112)}
VARIANTS.update({"strong/general": ("general", "strong", STRONG),
                 "strong/fast_oracle_ddpm": ("fast_oracle_ddpm", "strong", STRONG),
                 "strong/fast_oracle_gan": ("fast_oracle_gan", "strong", STRONG)})


def held_out_generators(train_fakes):
    """The generators a recipe's train_fakes take a half of."""
    return tuple(s.split(":", 1)[1] for s in train_fakes if s.startswith("generator:"))


def protocol(train_fakes):
    """What a recipe's train_fakes make of the training data, as the tables label it."""
    generators = ", ".join(held_out_generators(train_fakes))
    if not generators:
        return "CIFAKE only"
    if "cifake" in train_fakes:
        return f"CIFAKE + half of {generators}"
    return f"oracle: half of {generators} vs CIFAKE reals"


def run_variant(name, seed, data, device):
    """Train one variant with one seed and score it: a JSON-ready record."""
    recipe_name, arch, arch_kwargs = VARIANTS[name]
    recipe = replace(RECIPES[recipe_name], seed=seed)
    if data["sample"]:                                # the sample data only smoke-tests the pipeline
        recipe = replace(recipe, epochs=min(recipe.epochs, SAMPLE_EPOCHS))
    train, val = split_train_val(data["train"], recipe.val_fraction, 0)      # one validation split for every run
    started = time.perf_counter()
    model, history = train_model(train, val, recipe, arch, arch_kwargs, device, progress=False,
                                 generator_dirs=data["generator_dirs"])
    seconds = time.perf_counter() - started
    scores_of = lambda dataset: score_dataset(model, dataset, device)
    test = data["test"]
    at_half = score_at_threshold(test.labels.numpy(), scores_of(test), 0.5)
    held_out = held_out_generators(recipe.train_fakes)
    fakes, reals = data["development"] if not held_out else development_sets(
        data["cifake_root"], data["ddpm32_root"], data["generators_root"], held_out)
    faces = {prep: score_at_threshold(d.labels.numpy(), scores_of(d))["auroc"] for prep, d in data["faces"].items()}
    record = {"variant": name, "seed": seed, "recipe": recipe_name, "arch": arch, "arch_kwargs": arch_kwargs,
              "protocol": protocol(recipe.train_fakes), "held_out_half": list(held_out),
              "parameters": count_parameters(model), "images_per_epoch": history["n_train"],
              "training seconds": round(seconds, 1), "cifake test accuracy": at_half["accuracy"],
              "cifake test auroc": at_half["auroc"], "val threshold": history["threshold"],
              "generators": generator_figures(scores_of, fakes, reals),
              "faces auroc (resize)": faces.get("resize"),
              "faces auroc (best crop)": max(faces.get("center_crop", 0), faces.get("multi_crop", 0)) or None}
    dev = record["generators"]["mean AUROC, development generators"]
    print(f"{name}, seed {seed}: CIFAKE AUROC {at_half['auroc']:.4f}, development generators "
          + ", ".join(f"{g} {f['auroc']:.3f}" for g, f in record["generators"].items() if isinstance(f, dict))
          + f" (mean {dev:.3f}); {seconds:.0f} s")
    return record


# The generalisation benchmark (`--protocol logo` and `lofo`): the fast recipe trained on CIFAKE and on every
# development generator but the held-out one (logo) or the held-out family (lofo), scored on what was held out
# against CIFAKE's test reals. name: (recipe, architecture, balance, CIFAKE's weight in the FAKE class beside each
# generator's 1, other recipe changes).
LEAVE_OUT = {"fast balanced": ("fast", "cnn", "sources", 1.0, {}), "fast pooled": ("fast", "cnn", "pooled", 1.0, {}),
             "fast balanced, no CIFAKE": ("fast", "cnn", "sources", 0.0, {}),
             "fast balanced, CIFAKE x1/2": ("fast", "cnn", "sources", 0.5, {}),
             "fast_spectrum balanced": ("fast_spectrum", "cnn", "sources", 1.0, {}),
             # StrongCNN, the strong recipe cut to 4 epochs and one view (about 6 minutes a run on 2 cores)
             "strong balanced, 4 epochs": ("strong", "strong", "sources", 1.0,
                                           dict(epochs=4, test_flip=False, test_shift=0)),
             # ... and the generators the project trains itself (own_generators.py) beside them
             "fast balanced + own": ("fast", "cnn", "sources", 1.0, dict(own=tuple(OWN_MODELS))),
             # a linear probe on the frozen ImageNet backbone (PRETRAINED_PROBE), one epoch's balanced draw
             "pretrained probe balanced": ("pretrained", "pretrained", "sources", 1.0, {})}


# Generators the project trains itself instead (`--protocol own`): CIFAKE and own generators, every development
# generator unseen. Each own generator alone asks whether a cheap GAN teaches GANs, a cheap flow flows.
OWN = {f"CIFAKE + own {name}": ("fast", "cnn", "sources", 1.0, dict(own=(name,))) for name in OWN_MODELS}


OWN["CIFAKE + own gan, vae, flow"] = ("fast", "cnn", "sources", 1.0, dict(own=tuple(OWN_MODELS)))
OWN["CIFAKE + own gan, vae, flow, pooled"] = ("fast", "cnn", "pooled", 1.0, dict(own=tuple(OWN_MODELS)))  # all CIFAKE
SPECS = {**LEAVE_OUT, **OWN}


# The floor (CIFAKE only: every generator unseen) and the oracle (per generator: half of it in
# training, balanced against CIFAKE's reals, scored on the other half).
BOUNDS = {"floor": "fast", "oracle": "fast"}


FLOORS = {"fast": ("fast", "cnn"), "pretrained probe": ("pretrained", "pretrained")}   # --protocol floor --only


def arch_kwargs(arch, sample=False):
    """A benchmark architecture's keywords: StrongCNN's widths; for the pretrained backbone a linear probe (the
    frozen backbone) at the input size pretrained_model's validation chose for its probe, read from its sidecar."""
    if arch == "strong":
        return STRONG
    if arch != "pretrained":
        return {}
    if sample and not model_file("pretrained_model", sample).is_file():
        from realfake.training.loop import train_sample_pretrained
        train_sample_pretrained("cifake", model_file("pretrained_model", sample))
    sidecar = read_sidecar(model_file("pretrained_model", sample))
    if "image_size" not in sidecar:
        raise ProjectError("the pretrained benchmark rows probe at pretrained_model's input size: train it first "
                           "(python code/train.py --arch pretrained -mf pretrained_model)")
    return {"image_size": sidecar["image_size"], "finetune": 0}


PROTOCOLS = ("changes", "floor", "logo", "lofo", "oracle", "own")


def leave_out_recipe(name, train_on, seed):
    """The recipe of SPECS[name] (LEAVE_OUT or OWN) trained on CIFAKE (at its weight), on all of each generator in
    `train_on` and on the own generators it names, each of these a share of 1."""
    recipe, _, balance, cifake_weight, changes = SPECS[name]
    changes = dict(changes)
    own = tuple(f"own:{g}" for g in changes.pop("own", ()))
    sources = (("cifake",) if cifake_weight else ()) + tuple(f"generator:{g}:all" for g in train_on) + own
    shares = ((cifake_weight,) if cifake_weight else ()) + (1.0,) * (len(train_on) + len(own))
    return replace(RECIPES[recipe], seed=seed, train_fakes=sources, balance=balance,
                   fake_shares=shares if balance == "sources" else (), **changes)


def held_out_sets(protocol, generators):
    """{what is held out: the generators it holds} for a protocol over the development generators."""
    if protocol == "logo":
        return {g: [g] for g in generators}
    if protocol == "lofo":
        families = dict.fromkeys(family_of(g) for g in generators)
        return {f: [g for g in generators if family_of(g) == f] for f in families}
    return {"all": list(generators)} if protocol in ("floor", "own") else {g: [g] for g in generators}  # oracle: each


def benchmark_plan(protocol, generators, seeds, variants=None):
    """[(variant, held out, [generators held out], seed)] that a protocol runs."""
    names = variants or (list(LEAVE_OUT) if protocol in ("logo", "lofo") else list(OWN) if protocol == "own"
                         else [BOUNDS[protocol]])
    return [(name, key, held, seed) for name in names for key, held in held_out_sets(protocol, generators).items()
            for seed in range(seeds)]


def run_benchmark(protocol, name, held_out, held, seed, data, device):
    """Train one benchmark run and score it on every development generator: a JSON-ready record. Asserts on file
    digests that no image of a held-out generator was in training."""
    generators = list(data["generator_dirs"])
    arch = SPECS[name][1] if name in SPECS else FLOORS[name][1] if protocol == "floor" else "cnn"
    if protocol == "oracle":
        recipe = replace(RECIPES[BOUNDS["oracle"]], seed=seed, train_fakes=(f"generator:{held_out}",),
                         balance="sources")
    elif protocol == "floor":
        recipe = replace(RECIPES[FLOORS[name][0]], seed=seed)
    elif protocol == "own":
        recipe = leave_out_recipe(name, [], seed)
    else:
        recipe = leave_out_recipe(name, [g for g in generators if g not in held], seed)
    if data["sample"]:
        recipe = replace(recipe, epochs=min(recipe.epochs, SAMPLE_EPOCHS))
    train, val = split_train_val(data["train"], recipe.val_fraction, 0)
    pool, _ = training_pool(train, recipe, data["generator_dirs"], device, progress=False)
    fakes, reals = data["development"] if protocol != "oracle" else development_sets(
        data["cifake_root"], data["ddpm32_root"], data["generators_root"], held)
    unseen = [g for g in generators if g in held]            # the oracle's held list is its one generator
    leaked = [g for g in unseen if np.isin(fakes[g].digests, pool.digests).any()]
    if leaked:
        raise AssertionError(f"{name}: images of the held-out {', '.join(leaked)} are in its training set")
    started = time.perf_counter()
    model, history = train_model(train, val, recipe, arch, arch_kwargs(arch, data["sample"]), device, progress=False,
                                 generator_dirs=data["generator_dirs"])
    seconds = time.perf_counter() - started
    scores_of = (lambda dataset: probability(pretrained.cached_logits(model, dataset, device), model.temperature)) \
        if arch == "pretrained" else (lambda dataset: score_dataset(model, dataset, device))   # backbone: cached
    test = data["test"]
    at_half = score_at_threshold(test.labels.numpy(), scores_of(test), 0.5)
    figures = generator_figures(scores_of, fakes, reals)
    record = {"variant": name, "seed": seed, "benchmark": protocol, "held_out": held_out, "unseen": unseen,
              "recipe": recipe.name, "arch": arch, "epochs": recipe.epochs, "train_fakes": list(recipe.train_fakes),
              "balance": recipe.balance,
              "fake shares": history["fakes_per_epoch"], "images_per_epoch": history["n_train"],
              "training seconds": round(seconds, 1), "cifake test auroc": at_half["auroc"],
              "cifake test accuracy": at_half["accuracy"],
              "generators": {g: f for g, f in figures.items() if isinstance(f, dict)}}
    print(f"{protocol} {name}, held out {held_out}, seed {seed}: CIFAKE AUROC {at_half['auroc']:.4f}, unseen "
          + ", ".join(f"{g} {figures[g]['auroc']:.3f}" for g in unseen) + f"; {seconds:.0f} s")
    return record


def benchmark_table(runs):
    """One row per (protocol, variant): each development generator's AUROC when it was unseen (the mean over
    seeds, and over runs that left it out), the mean over generators and its sd over seeds, CIFAKE test AUROC
    (mean over runs), seeds, and each source's images per epoch in the first run."""
    rows = {}
    for (protocol, name), group in pd.DataFrame(runs).groupby(["benchmark", "variant"], sort=False):
        cells = pd.DataFrame([{"seed": run["seed"], "generator": g, "auroc": run["generators"][g]["auroc"]}
                              for run in group.to_dict(orient="records") for g in run["unseen"]])
        per_seed = cells.groupby(["seed", "generator"])["auroc"].mean().unstack()
        bounds = {"floor": "CIFAKE only (floor)", "oracle": "oracle: base CNN on half of it"}
        label = bounds[protocol] if name == BOUNDS.get(protocol) else f"{protocol}: {name}"
        rows[label] = {"protocol": protocol, "variant": name, "seeds": int(group["seed"].nunique()),
                       **{f"{g} AUROC": float(per_seed[g].mean()) for g in per_seed},
                       "mean AUROC": float(per_seed.mean(axis=1).mean()),
                       "mean AUROC sd": float(per_seed.mean(axis=1).std(ddof=1)) if len(per_seed) > 1 else 0.0,
                       "CIFAKE test AUROC": float(group["cifake test auroc"].mean()),
                       "fake shares": group.iloc[0]["fake shares"],
                       "training seconds": float(group["training seconds"].mean())}
    return rows


def family_table(rows, families):
    """Each benchmark row's mean AUROC over the development generators of each family (families: {generator:
    family}), beside its mean and CIFAKE test AUROC."""
    members = {}
    for generator, family in families.items():
        members.setdefault(family, []).append(generator)
    return pd.DataFrame({name: {**{family: float(np.mean([row[f"{g} AUROC"] for g in generators]))
                                   for family, generators in members.items()},
                                "mean AUROC": row["mean AUROC"], "CIFAKE test AUROC": row["CIFAKE test AUROC"]}
                         for name, row in rows.items()}).T


def run_figures(run):
    """One run's figures under the table's names (a held-back generator's AUROC too, when it was scored)."""
    figures = {"CIFAKE test accuracy": run["cifake test accuracy"], "CIFAKE test AUROC": run["cifake test auroc"],
               **{f"{g} AUROC": f["auroc"] for g, f in run["generators"].items() if isinstance(f, dict)},
               "mean development AUROC": run["generators"]["mean AUROC, development generators"],
               "faces AUROC (resize)": run["faces auroc (resize)"],
               "faces AUROC (best crop)": run["faces auroc (best crop)"], "training seconds": run["training seconds"]}
    return figures


def variant_table(runs, shipped=None):
    """One row per variant (the mean over its seeds, with the sd beside each figure) and per shipped model, and
    for ddpm-retrained and gan-small the share of the oracle's margin that each row recovers,
    (AUROC - 0.5) / (oracle AUROC - 0.5), against the oracle of the same architecture (else the base CNN's)."""
    rows = {}
    runs = [run for run in runs if "benchmark" not in run]             # the benchmark has its own table
    measured = {run["variant"] for run in runs}
    for name in [n for n in VARIANTS if n in measured] + sorted(measured - set(VARIANTS)):
        mine = [run for run in runs if run["variant"] == name]
        frame = pd.DataFrame([run_figures(run) for run in mine])
        row = {"protocol": mine[0]["protocol"], "arch": mine[0]["arch"], "parameters": mine[0]["parameters"],
               "seeds": len(mine)}
        for column in frame:
            row[column] = float(frame[column].mean())
            row[f"{column} sd"] = float(frame[column].std(ddof=1)) if len(frame) > 1 else 0.0
        rows[name] = row
    rows.update(shipped or {})
    oracles = {(g, row["arch"]): row[f"{g} AUROC"] for row in rows.values() for g in DEV_GENERATORS
               if row["protocol"] == f"oracle: half of {g} vs CIFAKE reals"}
    for row in rows.values():
        for g in ("ddpm-retrained", "gan-small"):
            oracle = oracles.get((g, row["arch"]), oracles.get((g, "cnn")))
            if oracle is not None and not row["protocol"].startswith("oracle") and f"{g} AUROC" in row:
                row[f"{g}: share of the oracle's margin"] = (row[f"{g} AUROC"] - 0.5) / (oracle - 0.5)
    return rows


def load_data(sample):
    """Everything a run reads, loaded once."""
    cifake_root = dataset_dir("CIFAKE_dir", sample)
    faces_root = dataset_dir("faces_dir", sample)
    faces = {p: load_agiri(faces_root, preprocess=p, name="faces", verbose=False) for p in PREPROCESSINGS} \
        if faces_root.is_dir() else {}
    roots = {"cifake_root": cifake_root, "ddpm32_root": dataset_dir("ddpm32_dir", sample),
             "generators_root": dataset_dir("generators32_dir", sample)}
    return {"sample": sample, **roots, "faces": faces, "development": development_sets(*roots.values()),
            "generator_dirs": generator_folders(roots["ddpm32_root"], roots["generators_root"]),
            "train": load_cifake(cifake_root, "train"), "test": load_cifake(cifake_root, "test")}


def run_study(protocol, out, only=None, seeds=3, redo=False, sample=False, device="cpu"):
    """The runs of `protocol` ("changes", or a benchmark protocol of PROTOCOLS): every variant of `only` (default
    all) with `seeds` seeds, each added to `out` (variants.json) as it ends; runs already there are kept unless
    `redo`. Returns the whole file's content."""
    known = VARIANTS if protocol == "changes" else LEAVE_OUT if protocol in ("logo", "lofo") else \
        OWN if protocol == "own" else FLOORS if protocol == "floor" else [BOUNDS[protocol]]
    unknown = set(only or ()) - set(known)
    if unknown:
        raise ProjectError(f"unknown variant(s) {', '.join(sorted(unknown))} for --protocol {protocol}: choose "
                           f"from {', '.join(known)}")
    commit = git_commit()                                         # the commit the runs start from
    result = json.loads(out.read_text()) if out.is_file() else {"runs": []}
    key = lambda run: (run.get("benchmark", "changes"), run["variant"], run.get("held_out"), run["seed"])
    done = set() if redo else {key(r) for r in result["runs"]}
    data = load_data(sample)
    if protocol == "changes":
        plan = [(name, None, None, seed) for name in only or VARIANTS       # a strong run: one seed, as its note says
                for seed in range(1 if name.startswith("strong/") else seeds)]
    else:
        plan = benchmark_plan(protocol, list(data["generator_dirs"]), seeds, only)
    for name, held_out, held, seed in plan:
        this = (protocol, name, held_out, seed)
        if this in done:
            continue
        result["runs"] = [r for r in result["runs"] if key(r) != this]
        record = run_variant(name, seed, data, device) if protocol == "changes" else \
            run_benchmark(protocol, name, held_out, held, seed, data, device)
        result["runs"].append({**record, "commit": commit})
        result.update(sample_data=sample, device=str(device), machine=machine_description(device),
                      torch=torch.__version__, commit=commit)
        atomic_write_bytes(out, (json.dumps(result, indent=2, default=float) + "\n").encode())   # after every run:
        print(f"wrote {shown(out)}")                   # an interrupted study keeps what it measured
    return result
