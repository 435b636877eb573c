"""Which training choices, on CIFAKE alone, make a small detector catch generators it never saw?

    python code/variants.py                          # every variant, 3 seeds -> notes/results/variants.json
    python code/variants.py --only fast fast_npr     # some variants (runs already in the file are kept, not redone)
    python code/variants.py --sample --seeds 1       # on the generated sample data (a smoke test)

Each variant is a recipe (training.RECIPES) on an architecture. Every run trains on CIFAKE's training split (less
its validation split) and is scored on the CIFAKE test set, on each development generator's images against
CIFAKE's 10,000 test reals (AUROC, AP), and on the DDPM faces against CelebA-HQ (resized, and the best of the two
native-resolution crops). The development generators only compare variants: they never fit a weight or a threshold.
Variants that train on a half of one generator (protocol "plus one generator", and the oracles) are scored on the
other half of it. `python code/reproduce.py` turns the file into the results table.
"""
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd
import torch

import cli
from classes import count_parameters, development_sets, load_agiri, load_cifake
from evaluate import DEV_GENERATORS, generator_figures, score_at_threshold, score_dataset
from imagefiles import PREPROCESSINGS
from project import REPO_ROOT, ProjectError, config_path, dataset_dir, git_commit, machine_description, pick_device
from training import RECIPES, SAMPLE_EPOCHS, split_train_val, train_model

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
                                 generators_root=data["generators_root"])
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


# The rule for shipping a general model, set before the study: the CIFAKE-only variant with the best mean AUROC over
# the development generators, among those that beat strong_model's mean by LEAST_GAIN and keep CIFAKE test AUROC.
SHIPPING_RULE = {"against": "strong_model", "least gain": 0.05, "least CIFAKE AUROC": 0.98}


def shipping_decision(rows, rule=SHIPPING_RULE):
    """Which CIFAKE-only variant, if any, the rule ships: {"rule", "chosen" (a name or None), "variants": each
    variant's gain over the reference and whether it qualifies}."""
    reference = rows[rule["against"]]["mean development AUROC"]
    verdicts = {}
    for name, row in rows.items():
        if row["protocol"] == "CIFAKE only":
            gain = row["mean development AUROC"] - reference
            verdicts[name] = {"gain": gain, "CIFAKE test AUROC": row["CIFAKE test AUROC"],
                              "qualifies": gain >= rule["least gain"] and
                              row["CIFAKE test AUROC"] >= rule["least CIFAKE AUROC"]}
    qualifying = [name for name, verdict in verdicts.items() if verdict["qualifies"]]
    chosen = max(qualifying, key=lambda name: rows[name]["mean development AUROC"]) if qualifying else None
    return {"rule": rule, "chosen": chosen, "variants": verdicts}


def load_data(sample):
    """Everything a run reads, loaded once."""
    cifake_root = dataset_dir("CIFAKE_dir", sample)
    faces_root = dataset_dir("faces_dir", sample)
    faces = {p: load_agiri(faces_root, preprocess=p, name="faces", verbose=False) for p in PREPROCESSINGS} \
        if faces_root.is_dir() else {}
    roots = {"cifake_root": cifake_root, "ddpm32_root": dataset_dir("ddpm32_dir", sample),
             "generators_root": dataset_dir("generators32_dir", sample)}
    return {"sample": sample, **roots, "faces": faces, "development": development_sets(*roots.values()),
            "train": load_cifake(cifake_root, "train"), "test": load_cifake(cifake_root, "test")}


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--only", nargs="+", metavar="VARIANT", help=f"variants to run (default all: "
                                                                     f"{', '.join(VARIANTS)})")
    parser.add_argument("--seeds", type=cli.positive_int, default=3, help="training seeds per variant (default 3)")
    parser.add_argument("--redo", action="store_true", help="run the chosen variants again (replacing their runs)")
    parser.add_argument("--out", help="output JSON (default notes/results/variants.json, or the sample results folder)")
    args = cli.parse(parser, argv)
    unknown = set(args.only or ()) - set(VARIANTS)
    if unknown:
        raise ProjectError(f"unknown variant(s) {', '.join(sorted(unknown))}: choose from {', '.join(VARIANTS)}")
    out = Path(args.out) if args.out else (config_path("sample_dir") / "results" if args.sample
                                           else REPO_ROOT / "notes" / "results") / "variants.json"
    device = pick_device(args.device)
    result = json.loads(out.read_text()) if out.is_file() else {"runs": []}
    done = set() if args.redo else {(r["variant"], r["seed"]) for r in result["runs"]}
    data = load_data(args.sample)
    for name in args.only or VARIANTS:
        for seed in range(args.seeds):
            if (name, seed) in done:
                continue
            result["runs"] = [r for r in result["runs"] if (r["variant"], r["seed"]) != (name, seed)]
            result["runs"].append(run_variant(name, seed, data, device))
            result.update(sample_data=args.sample, device=str(device), machine=machine_description(device),
                          torch=torch.__version__, commit=git_commit())
            cli.write_json(out, result)                # after every run: an interrupted study keeps what it measured
    return result


if __name__ == "__main__":
    cli.run(main)
