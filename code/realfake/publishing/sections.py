"""The study's sections: each loads its data, scores the shipped models (through a ScoreStore, so nothing is scored
twice) and writes its tables and figures into a `Report`, with every figure also in results.json. `reproduce.py`
runs them in order; the README's tables and the model card are built from results.json by publish.py."""
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from classes import development_sets, load_agiri, load_cifake, load_cifar100, load_real_photos
from realfake import FAKE, LABEL_NAMES, REAL
from realfake.data.datasets import family_of, load_fakes
from realfake.data.file_facts import facts_of
from realfake.data.imagefiles import PREPROCESSINGS
from realfake.data.splits import VAL_FRACTION, split_indices
from realfake.evaluation import audit
from realfake.evaluation.explain import (
    CAM_METHODS,
    cam_maps,
    centre_share,
    gate_statistics,
    overlay,
    pick_examples,
    srm_gates,
)
from realfake.evaluation.robustness import by_short_side, perturbation_table, wide_table
from realfake.evaluation.scoring import (
    DEV_GENERATORS,
    accounting_table,
    cifar100_transfer,
    evaluate_cifake,
    generator_figures,
)
from realfake.metrics import (
    BOOTSTRAP_RESAMPLES,
    ECE_BINS,
    accuracy_by_group,
    bootstrap_intervals,
    choose_threshold,
    expected_calibration_error,
    figures_with_intervals,
    probability,
    reliability_table,
    score_at_threshold,
    summary_row,
)
from realfake.models.checkpoints import load_model
from realfake.models.inference import dataset_logits, temperature_of
from realfake.project import (
    ProjectError,
)
from realfake.publishing import figures
from realfake.publishing.publish import (
    ANCHORS,
    HELD_BACK,
    ORIGINAL_DETAILS,
    ORIGINAL_STUDY,
    PAPER_ACCURACY,
    PAPER_CNNS,
    photo_table,
)
from realfake.publishing.reporting import markdown
from realfake.rules import (
    CIFAKE_GOAL,
    FULL_SIZE_GOAL,
    FULL_SIZE_SHIP_AT_LEAST,
    GENERAL_RULE,
    PHOTO_AUROC_AT_LEAST,
    PHOTO_CALLED_FAKE_AT_MOST,
    PHOTO_FAKES_CALLED_REAL,
    PHOTO_VALIDATION_CALLED_FAKE,
    VARIANT_SHIPPING_RULE,
    general_decision,
    no_outside_decision,
    variant_shipping_decision,
)
from realfake.studies.matrix import COLUMNS, IN_DOMAIN, summary, table
from realfake.studies.variants import benchmark_table, family_table, held_out_generators, protocol, variant_table
from realfake.training.photos import OOD_QUANTILE
from realfake.training.pretrained import format_test, jpeg_mask, load_held_out, transfer_figures
from realfake.training.recipes import RECIPES, SHIPPED_MODELS, Recipe, train_command


def matrix(report, path):
    """The reproduction report's matrix section, from matrix.json: the table, the figure, and the CIFAKE-trained
    models on all of CIFAKE's test split. results.json "matrix"."""
    if not path.is_file():
        raise ProjectError(f"{path.name} not found: run python code/matrix.py")
    result = json.loads(path.read_text())
    rows = summary(result)
    report.results["matrix"] = {**{k: v for k, v in result.items() if k != "runs"}, "rows": rows,
                                "cifake goal": CIFAKE_GOAL}
    commits = sorted({run.get("git_commit", result["git_commit"]) for run in result["runs"]})   # --keep-trained
    report.text("## The transfer matrix: training data x backbone",
                f"Each row trained on one set and scored on every column (`python code/matrix.py`, "
                f"commit{'s' if len(commits) > 1 else ''} {', '.join(commits)}); in-domain cells in bold; ± the sd "
                f"over seeds where there are several. "
                f"Each scoring set is a seeded draw of up to {result['eval per class']:,} images per class; "
                f"'both' is the AGIRI training folds ({result['n AGIRI training folds']:,} images) and as many "
                f"CIFAKE training images.")
    report.text(table(rows).to_markdown())
    values = pd.DataFrame({label: {column: row[column] for column in COLUMNS} for label, row in rows.items()}).T
    report.figure(figures.matrix_heatmap(values, {label: IN_DOMAIN[row["trained on"]] for label, row in rows.items()}),
                  "matrix.png", "the transfer matrix")
    report.text("The CIFAKE-trained models on all of CIFAKE's test split (threshold from validation; 95% intervals):")
    report.table(pd.DataFrame(result["cifake test"]).T[["choice", "validation AUROC", "accuracy", "accuracy, 95% low",
                                                        "accuracy, 95% high", "auroc", "auroc, 95% low",
                                                        "auroc, 95% high", "ships"]])


def cifake(report, sidecars, root, models, device, store):
    test, train = load_cifake(root, "test"), load_cifake(root, "train", verbose=False)
    labels, rows, scores, sweeps, reliability = test.labels.numpy(), {}, {}, {}, {}
    score = store.for_dataset(test)
    for name, model in models.items():
        logits = score(name, "none", lambda: dataset_logits(model, test, device))
        scores[name] = probability(logits, temperature_of(model))
        reliability[name] = {"before": reliability_table(labels, probability(logits)),
                             "after": reliability_table(labels, scores[name])}
        result, sweeps[name], _ = evaluate_cifake(model, test, 0.5, device, train, scores=scores[name])
        at_val = score_at_threshold(labels, scores[name], sidecars[name]["threshold"])
        intervals = bootstrap_intervals(labels, scores[name], sidecars[name]["threshold"])
        rows[name] = {**summary_row(result), "val threshold": sidecars[name]["threshold"],
                      "accuracy at val threshold": at_val["accuracy"],
                      "accuracy at val threshold, 95% low": intervals["accuracy"][0],
                      "accuracy at val threshold, 95% high": intervals["accuracy"][1],
                      "auroc, 95% low": intervals["auroc"][0], "auroc, 95% high": intervals["auroc"][1],
                      "temperature": temperature_of(model),
                      "ece before calibration": expected_calibration_error(labels, probability(logits)),
                      "parameters": sidecars[name]["parameters"], "epochs": sidecars[name]["epochs"],
                      "recipe": sidecars[name].get("recipe", "original"),
                      "training seconds": sidecars[name]["wall_seconds"]}
    removed = result["deduplicated"]["removed"]
    table = pd.DataFrame(rows).T
    report.results["cifake_test"] = {"n": len(test), "leaked_removed": removed, "models": rows}
    report.text(f"## CIFAKE test ({len(test)} images)", f"Threshold 0.5 unless stated; `accuracy_dedup` leaves out "
                f"the {removed} test files that are byte-identical to training files; intervals: 95% bootstrap, "
                f"{BOOTSTRAP_RESAMPLES:,} resamples of the test images.")
    headline = ["n", "accuracy", "called_real", "auroc", "ap", "f1_fake", "f1_real", "accuracy_dedup", "val threshold",
                "accuracy at val threshold"]
    calibration = ["temperature", "ece before calibration", "ece"]
    report.table(table[headline])
    report.text("### Calibration", f"Expected calibration error ({ECE_BINS} equal-width bins of the confidence in the "
                "call) with P(real) = sigmoid(logit) and after temperature scaling, P(real) = sigmoid(logit / T), T "
                "fitted on each model's validation split:")
    report.table(table[calibration])
    report.figure(figures.reliability_diagrams(reliability), "reliability.png", "reliability before and after")
    report.text("### Intervals and training", "95% intervals at each model's validation threshold:")
    report.table(table.drop(columns=headline + calibration))
    for name, sweep in sweeps.items():
        report.figure(figures.sweep_curves(sweep, f"{name} on {test.name}"), f"sweep_{name}.png", f"{name} sweep")
    report.figure(figures.roc_curves(labels, scores, f"CIFAKE test split, {len(test):,} images"), "roc_cifake.png",
                  "ROC curves on CIFAKE test")
    histories = {n: s["history"] for n, s in sidecars.items() if len(s.get("history", [])) > 1}
    if histories:
        report.figure(figures.training_curves(histories), "training_curves.png", "training curves")
    by_class = pd.DataFrame({n: accuracy_by_group(labels, s, test.classes, test.class_names)["accuracy"]
                             for n, s in scores.items()})
    report.results["cifake_test"]["accuracy by content class"] = by_class.to_dict(orient="index")
    report.results["cifake_train"] = {"n": len(train), "real": int((train.labels == REAL).sum()),
                                      "fake": int((train.labels == FAKE).sum())}
    report.text("### Accuracy per CIFAR-10 content class (both labels)")
    report.table(by_class.sort_values(next(iter(scores))))


def cifar100(report, root, models, device, store):
    data = load_cifar100(root, "test")
    scores = {name: store.scores(name, data, device) for name in models}
    transfer = cifar100_transfer(scores, data)
    report.results["cifar100"] = {"n": len(data), "share_called_real": transfer["overall"].to_dict()}
    report.text(f"## CIFAR-100 ({len(data)} images, all real): share called real at 0.5")
    report.table(transfer["overall"].to_frame())
    report.text("### Per coarse class (worst first)")
    report.table(transfer["coarse"])
    report.figure(figures.grouped_bars(transfer["coarse"], "share called real", "CIFAR-100 coarse classes"),
                  "cifar100_coarse.png", "share called real per coarse class")
    report.text("### The five worst and best fine classes", markdown(transfer["fine"].head(5), ".3f"), "",
                markdown(transfer["fine"].tail(5), ".3f"))


def mixed(report, sidecars, root, models, device, store, key, name, title):
    """A `test/{fake,real}` folder of images of any size (AGIRI, the faces stand-in), under each preprocessing."""
    datasets = {p: load_agiri(root, preprocess=p, name=name) for p in PREPROCESSINGS}
    report.text(f"## {title}: every file accounted for")
    report.table(accounting_table(datasets))
    rows = {}
    for prep, data in datasets.items():
        for model_name in models:
            scores = store.scores(model_name, data, device)
            labels = data.labels.numpy()
            at_val = score_at_threshold(labels, scores, sidecars[model_name]["threshold"])
            rows[(model_name, prep)] = {**summary_row(score_at_threshold(labels, scores, 0.5)),
                                        "accuracy at val threshold": at_val["accuracy"]}
    table = pd.DataFrame(rows).T.rename_axis(["model", "preprocessing"])
    labels = datasets["resize"].labels
    base_rate = float((labels == REAL).float().mean())
    report.results[key] = {"n": len(labels), "n_real": int((labels == REAL).sum()),
                           "n_fake": int((labels == FAKE).sum()), "ap base rate": base_rate,
                           "models": {f"{m} {p}": row for (m, p), row in rows.items()}}
    report.text(f"## {title} ({len(datasets['resize'])} images): three preprocessings, threshold 0.5",
                f"AP counts REAL as the positive class: read it beside its base rate, {base_rate:.4f} (the share of "
                f"reals), which a model that knows nothing scores.")
    report.table(table)


AGIRI_SUBSET = "AGIRI train subset, 224 px, re-saved"          # its name everywhere: not AGIRI's test split


def agiri_subset(report, sidecars, root, models, device, store):
    """The AGIRI train subset (224 px, re-saved): every shipped model under each preprocessing, on all of it and on
    its JPEG fakes alone against its (all-JPEG) reals, so that the file format cannot carry a figure; AUROC, AP and
    accuracy at each model's validation threshold with 95% intervals."""
    datasets = {p: load_agiri(root, preprocess=p, name=AGIRI_SUBSET) for p in PREPROCESSINGS}
    report.text(f"## {AGIRI_SUBSET}: every file accounted for")
    report.table(accounting_table(datasets))
    data = datasets["resize"]
    labels = data.labels.numpy()
    formats = np.array([facts.get("format") for facts in facts_of([str(root / s) for s in data.sources])])
    subsets = {"all": np.ones(len(labels), bool), "JPEG fakes only": (labels == REAL) | (formats == "JPEG")}
    rows = {}
    for prep, prepared in datasets.items():
        for name in models:
            scores = store.scores(name, prepared, device)
            for subset, keep in subsets.items():
                rows[(name, prep, subset)] = figures_with_intervals(labels[keep], scores[keep],
                                                                    sidecars[name]["threshold"])
    report.results["agiri_subset"] = {
        "name": AGIRI_SUBSET, "report": data.report.summary(), "n_real": int((labels == REAL).sum()),
        "n_fake": int((labels == FAKE).sum()),
        "fake formats": pd.Series(formats[labels == FAKE]).value_counts().to_dict(),
        "real formats": pd.Series(formats[labels == REAL]).value_counts().to_dict(),
        "models": {f"{m} {p} {s}": row for (m, p, s), row in rows.items()}}
    table = pd.DataFrame(rows).T.rename_axis(["model", "preprocessing", "fakes"])
    report.text(f"## {AGIRI_SUBSET} ({len(labels)} images): per model, preprocessing and fakes kept",
                "Accuracy at 0.5 and at each model's validation threshold (chosen on CIFAKE); 95% bootstrap intervals "
                "resample within each class. 'JPEG fakes only' drops the PNG fakes: every real is a JPEG.")
    report.table(table[["n_fake", "n_real", "auroc", "auroc, 95% low", "auroc, 95% high", "ap", "accuracy at 0.5",
                        "accuracy", "accuracy, 95% low", "accuracy, 95% high"]])


def validation(report, sidecars, cifake_root, models, device, store):
    """How far each shipped model's validation figures move once the validation images that copy a training image
    are left out (splits.split_indices): the same models and the same draw, scored again; its threshold was chosen
    with the copies in. results.json "validation"."""
    data, rows = load_cifake(cifake_root, "train", verbose=False), {}
    for name in models:
        sidecar = sidecars[name]
        _, val, copies = split_indices(data, sidecar.get("val_fraction", VAL_FRACTION), sidecar.get("seed", 0))
        drawn = np.sort(np.concatenate([val, copies]))
        labels, scores = data.labels.numpy()[drawn], store.scores(name, data.subset(drawn), device)
        kept = np.isin(drawn, val)
        with_copies, without = (score_at_threshold(labels[m], scores[m], sidecar["threshold"])
                                for m in (np.ones(len(drawn), bool), kept))
        rows[name] = {"validation images drawn": len(drawn), "copies of training images": len(copies),
                      "AUROC, copies in": with_copies["auroc"], "AUROC, copies out": without["auroc"],
                      "accuracy at its threshold, copies in": with_copies["accuracy"],
                      "accuracy at its threshold, copies out": without["accuracy"],
                      "threshold": sidecar["threshold"],
                      "threshold chosen without the copies": choose_threshold(labels[kept], scores[kept])}
    report.results["validation"] = rows
    report.text("## Validation without copies of training images",
                "The validation split is drawn from CIFAKE's training split; some drawn images are byte-identical to a "
                "training image (CIFAKE's duplicate groups). Each shipped model's validation figures with those copies "
                "in (as it was calibrated) and out (as the split is drawn now):")
    report.table(pd.DataFrame(rows).T)


def ddpm32(report, cifake_root, ddpm_root, models, device, store):
    """DDPM samples at 32 x 32 (CIFAKE's own size and JPEG tables) against CIFAKE's real test images."""
    test = load_cifake(cifake_root, "test", verbose=False)
    data = load_fakes(ddpm_root, "DDPM-32").join(test.subset(test.labels == REAL), "DDPM-32 vs CIFAKE test/REAL")
    labels, rows = data.labels.numpy(), {}
    for name in models:
        scores = store.scores(name, data, device)
        fakes = scores[labels == FAKE]
        rows[name] = {**summary_row(score_at_threshold(labels, scores, 0.5)),
                      "fakes called real": float((fakes >= 0.5).mean()), "mean P(real) of fakes": float(fakes.mean())}
    base_rate = float((labels == REAL).mean())
    report.results["ddpm32"] = {"n_fake": int((labels == FAKE).sum()), "n_real": int((labels == REAL).sum()),
                                "ap base rate": base_rate, "report": data.report.summary(), "models": rows}
    report.text(f"## Another generator at 32 x 32: {int((labels == FAKE).sum())} DDPM samples against the "
                f"{int((labels == REAL).sum())} real CIFAKE test images", f"{data.report.summary()}. AUROC below 0.5 "
                f"means the model ranks these fakes as more real than real photographs; AP (REAL positive) is to be "
                f"read beside its base rate, {base_rate:.4f}.")
    report.table(pd.DataFrame(rows).T)


def audits(report, folders, missing=()):
    """Shortcut audits (audit.py) of every image-folder dataset evaluated: what separates real from fake besides
    the images, and duplicates. `missing`: one line for each set that would be audited but is not on disk."""
    report.text("## Dataset audits: shortcuts before the detector finds them", *[f"- skipped: {m}" for m in missing])
    for line in missing:
        print(f"skipped the audit of {line}")
    rows = {}
    for name, (root, real) in folders.items():
        try:
            result = audit.audit(root, real=real, verbose=False)
        except ProjectError as e:
            print(f"skipped the audit of {name}: {e}")
            continue
        report.text(f"### {name}", *[f"- {line}" for line in audit.summary_lines(result)])
        rows[name] = {"metadata AUROC": result["metadata_shortcut"]["auroc"],
                      "colour statistics AUROC": result["colour_statistics"]["auroc"], "flags": len(result["flags"]),
                      "duplicate groups": result["duplicates"]["groups"],
                      "test files in train": result["duplicates"]["test_files_in_train"]}
    report.results["audit"] = rows
    if rows:
        report.text("### Audits at a glance", "Flagged at metadata AUROC >= 0.65 or any duplicate across classes or "
                    "splits; colour statistics are reported, not flagged (`python code/audit.py DIR`).")
        report.table(pd.DataFrame(rows).T)


def transfer_summary(report):
    """One row per model: CIFAKE test AUROC beside every transfer figure measured (results.json "transfer")."""
    results, rows = report.results, {}
    for name, cifake in results["cifake_test"]["models"].items():
        row = {"CIFAKE test AUROC": cifake["auroc"], "CIFAKE test recall of REAL": cifake["recall_real"]}
        if "cifar100" in results:
            row["CIFAR-100 share called real"] = results["cifar100"]["share_called_real"][name]
        if "faces" in results:
            faces = {p: results["faces"]["models"][f"{name} {p}"]["auroc"] for p in PREPROCESSINGS}
            row["faces AUROC (resize)"] = faces["resize"]
            row["faces AUROC (best crop)"] = max(faces["center_crop"], faces["multi_crop"])
        if "ddpm32" in results:
            row["DDPM-32 AUROC"] = results["ddpm32"]["models"][name]["auroc"]
        if "agiri_subset" in results:
            subset = results["agiri_subset"]["models"]
            row["AGIRI train subset AUROC (resize)"] = subset[f"{name} resize all"]["auroc"]
            row["AGIRI train subset AUROC, JPEG fakes (resize)"] = subset[f"{name} resize JPEG fakes only"]["auroc"]
        rows[name] = row
    results["transfer"] = rows
    report.text("## Transfer at a glance", "AUROC: how well P(real) ranks real above generated images (0.5: chance; "
                "below 0.5: reversed). Faces: DDPM vs CelebA-HQ at 256 x 256, a stand-in for AGIRI, never AGIRI. "
                f"AGIRI train subset: the {AGIRI_SUBSET} (not AGIRI's test split).")
    report.table(pd.DataFrame(rows).T)


def generators(report, sidecars, folder, models, device, store, variants_file):
    """Other generators at 32 x 32: every shipped model on each development generator against CIFAKE's test reals,
    beside the transfer study's variants (variants.json, `python code/variants.py`): one table, results.json
    "generators". Needs the CIFAKE section and the transfer summary first."""
    fakes, reals = development_sets(folder["CIFAKE_dir"], folder["ddpm32_dir"], folder["generators32_dir"])
    cifake, transfer, shipped = report.results["cifake_test"]["models"], report.results.get("transfer", {}), {}
    for name in models:
        held_out = held_out_generators(sidecars[name].get("train_fakes") or ())
        mine = development_sets(folder["CIFAKE_dir"], folder["ddpm32_dir"], folder["generators32_dir"],
                                held_out)[0] if held_out else fakes
        scored = generator_figures(lambda data: store.scores(name, data, device), mine, reals)
        shipped[name] = {"protocol": f"{protocol(sidecars[name].get('train_fakes') or ('cifake',))} (shipped)",
                         "arch": sidecars[name]["arch"], "parameters": sidecars[name]["parameters"], "seeds": 1,
                         "CIFAKE test accuracy": cifake[name]["accuracy"], "CIFAKE test AUROC": cifake[name]["auroc"],
                         **{f"{g} AUROC": f["auroc"] for g, f in scored.items() if isinstance(f, dict)},
                         "mean development AUROC": scored["mean AUROC, development generators"],
                         **{k: transfer.get(name, {}).get(k)
                            for k in ("faces AUROC (resize)", "faces AUROC (best crop)")},
                         "training seconds": sidecars[name]["wall_seconds"]}
    variants = json.loads(variants_file.read_text()) if variants_file.is_file() else {"runs": []}
    rows = variant_table(variants["runs"], shipped)
    recipes = {run["recipe"] for run in variants["runs"] if run.get("recipe")} | {"fast"}     # zero-shot runs: none
    report.results["generators"] = {
        "recipes": {name: asdict(RECIPES[name]) for name in sorted(recipes)},
        "decision": variant_shipping_decision(rows) if VARIANT_SHIPPING_RULE["against"] in rows else None,
        "n_fake": {g: len(images) for g, images in fakes.items()}, "n_real": len(reals),
        "development": list(DEV_GENERATORS),
        "variants": {k: variants.get(k) for k in ("device", "machine", "torch", "commit")}, "rows": rows}
    report.text(f"## Other generators at 32 x 32 (against CIFAKE's {report.results['generators']['n_real']:,} test "
                "reals)", "Variants: the mean over seeds (sd beside it in results.json); `python code/variants.py` "
                "trains them, shipped models are scored here. Oracle rows train on a half of one generator and are "
                "scored on the other half; the share of the oracle's margin is (AUROC - 0.5) / (oracle AUROC - 0.5).")
    table = pd.DataFrame(rows).T
    report.table(table[[c for c in table.columns if not c.endswith(" sd") and c != "arch"]])
    auroc = table[[f"{g} AUROC" for g in DEV_GENERATORS]].astype(float)
    auroc.columns = list(DEV_GENERATORS)
    report.figure(figures.grouped_bars(auroc, "AUROC", "each generator against CIFAKE's test reals", reference=0.5),
                  "generators.png", "AUROC per development generator")


def full_size_sidecar(path, dataset, train=None):
    """The sidecar of a full-size model file (trained on `dataset`: agiri or photos); `train()` makes the model when
    the file is missing (the sample data), else a one-line error says how to train it."""
    if not path.is_file():
        if train is None:
            raise ProjectError(f"{path.name} not found: train it with `python code/train.py --arch pretrained "
                               f"--dataset {dataset} -mf {path.stem}`")
        train()
    return json.loads(path.with_suffix(".json").read_text())


FULL_SIZE_MODEL = "agiri_model"
FULL_SIZE_KEYS = ("ships", "shipping rule", "choice", "backbone", "image_size", "taps", "finetune", "report",
                  "n_images", "n_train", "n_held_out", "duplicate groups", "near-duplicate bits", "cv_folds",
                  "augment copies", "jpeg quality", "threshold", "temperature", "validation", "cross-validation",
                  "held-out", "transfer", "wall_seconds", "seconds to choose (CV)", "git_commit", "device")


def fullsize(report, path, root, transfer_roots, device="cpu", train=None):
    """The full-size detector (pretrained.fit_agiri, `python code/train.py --arch pretrained --dataset agiri -mf
    agiri_model`): its cross-validated choices, held-out figures, format test, transfer and shipping verdict, from
    its sidecar, and its held-out fold (in `root`) as if its images had been smaller; `train()` makes the model first
    when the file is missing (the sample data), else the section says how to train it. The format test and the
    transfer figures (`transfer_roots`: the faces, CIFAKE and DDPM-32 folders) are computed here, as the code now
    has them."""
    sidecar = full_size_sidecar(path, "agiri", train)
    held = sidecar["held-out"]
    report.results["fullsize"] = {"model": FULL_SIZE_MODEL, **{key: sidecar[key] for key in FULL_SIZE_KEYS},
                                  "held-out fraction": sidecar["held_out"]["fraction"],
                                  "ship at least": FULL_SIZE_SHIP_AT_LEAST, "goal": FULL_SIZE_GOAL}
    model, checkpoint = load_model(path, device)
    fold, formats = load_held_out(sidecar, root)
    labels = fold.labels.numpy()
    held = report.results["fullsize"]["held-out"] = {**held, "format test": format_test(
        model, fold, formats, checkpoint["threshold"])}
    sidecar["transfer"] = report.results["fullsize"]["transfer"] = transfer_figures(model, *transfer_roots, device)
    smaller = by_short_side(model, fold, labels, jpeg_mask(labels, formats), checkpoint["threshold"], device=device)
    report.results["fullsize"]["held-out by short side"] = smaller
    report.text(f"## The full-size detector: {FULL_SIZE_MODEL} on the {AGIRI_SUBSET}",
                f"{sidecar['report']}; {sidecar['duplicate groups']} duplicate groups; {sidecar['n_held_out']} images "
                f"held out first, {sidecar['n_train']} for {sidecar['cv_folds']}-fold grouped cross-validation. "
                f"Chosen: {sidecar['choice']}. Rule: {sidecar['shipping rule']} Verdict: "
                f"{'ships' if sidecar['ships'] else 'does not ship'}.")
    report.text("Cross-validation (out-of-fold AUROC; the choice maximises the JPEG-fakes column):")
    report.table(pd.DataFrame(sidecar["cross-validation"]).T)
    report.text("Held-out fold (95% bootstrap intervals; threshold from the out-of-fold scores):")
    report.table(pd.DataFrame({k: v for k, v in held.items() if k != "format test"}).T[
        ["n_fake", "n_real", "auroc", "auroc, 95% low", "auroc, 95% high", "ap", "accuracy", "accuracy, 95% low",
         "accuracy, 95% high"]])
    report.text("Format test: held-out PNG fakes saved as JPEG, and reals saved again as JPEG (the change in P(real), "
                "the calls that flip, the AUROC of all fakes before and after):")
    report.table(pd.DataFrame(held["format test"]).T)
    report.text("Transfer to sets it never trained on:")
    report.table(pd.DataFrame(sidecar["transfer"]).T)
    report.text(f"Smaller images: the held-out fold shrunk to each short side, then decoded back to "
                f"{sidecar['image_size']} px as predict.py decodes a small image (at the model's threshold):")
    report.table(pd.DataFrame(smaller).T.rename_axis("short side (px)"))


PHOTO_MODEL = "photo_model"


def photos(report, path, agiri_root, photos_root, train=None):
    """photo_model (photos.fit_photos, `python code/train.py --arch pretrained --dataset photos -mf photo_model`):
    each option's left-out-source figures, the verdict shares per real source beside agiri_model's, the held-out and
    transfer figures and rules.PHOTO_RULE's verdict on both, from its sidecar, and the audit of its training pool
    (the files in `agiri_root` and `photos_root` but the held-out fold); `train()` makes the model first when the
    file is missing (the sample data), else the section says how to train it. results.json "photos"."""
    sidecar = full_size_sidecar(path, "photos", train)
    best = sidecar["options"][sidecar["choice"]]
    report.results["photos"] = {
        "model": PHOTO_MODEL, **{key: sidecar[key] for key in (
            "choice", "choice rule", "sources", "n_train", "n_held_out", "band (P(real))", "temperature",
            "validation verdicts", "held-out", "faces", "transfer", "decision", "rule", "git_commit", "device",
            "wall_seconds")},
        "band": sidecar["band (P(real))"], "left-out sources": best["left-out sources"],
        "settings": {"AUROC at least": PHOTO_AUROC_AT_LEAST, "called fake at most": PHOTO_CALLED_FAKE_AT_MOST,
                     "validation reals called fake at most": PHOTO_VALIDATION_CALLED_FAKE,
                     "validation fakes called real at most": PHOTO_FAKES_CALLED_REAL, "distance quantile": OOD_QUANTILE},
        "left-out sources called fake": {s: r["fake"] for s, r in best["left-out sources"].items()},
        "options": {name: {"out-of-fold AUROC, AGIRI JPEG fakes": row["out-of-fold AUROC, AGIRI JPEG fakes"],
                           **{f"{s}: called fake": r["fake"] for s, r in row["left-out sources"].items()}}
                    for name, row in sidecar["options"].items()},
        **({"old model": sidecar["old model"]} if "old model" in sidecar else {})}
    result = report.results["photos"]
    report.text(f"## Real photographs stay real: {PHOTO_MODEL}",
                f"Sources: {', '.join(f'{s} {n}' for s, n in sidecar['sources'].items())}; {sidecar['n_held_out']} "
                f"AGIRI images held out first (agiri_model's fold), {sidecar['n_train']} in the training pool. "
                f"Choice: {sidecar['choice']} ({sidecar['choice rule']}).",
                "Each option, with each real source left out of training in turn (threshold chosen on the others):")
    report.table(pd.DataFrame(result["options"]).T)
    report.text("Verdicts per real source (photo_model: the chosen option, its source left out or its images held "
                "out; agiri_model at its own threshold):")
    report.table(photo_table(result))
    report.text(f"Rule: {sidecar['rule']}", f"photo_model: {sidecar['decision']}",
                *([f"{sidecar['old model']['model']}: {sidecar['old model']['decision']}"] if "old model" in sidecar
                  else []))
    result["audit"] = pool_audit(agiri_root, photos_root, set(sidecar["held_out"]["files"]))
    report.text("Audit of the training pool (the files alone, cross-validated: could a detector score on anything but "
                "the images?):", *audit.comparison_lines(result["audit"], "its fakes and its reals"),
                "Strongest file facts (the AUROC lost when each is shuffled): " + (", ".join(
                    f"{f['feature']} (-{f['auroc_drop']:.3f})" for f in result["audit"]["metadata"]["features"])
                    if result["audit"]["metadata"] else "none"))
    result["audit"] = {k: v for k, v in result["audit"].items() if k != "not_run"}


def pool_audit(agiri_root, photos_root, held_out):
    """audit.compare_sets over photo_model's training pool: AGIRI's fakes against AGIRI's reals and every real
    photograph, the held-out fold left out."""
    agiri = load_agiri(agiri_root, verbose=False, name="AGIRI train subset")
    keep = [i for i, source in enumerate(agiri.sources) if source not in held_out]
    agiri = agiri.subset(keep)
    photos = list(load_real_photos(photos_root, "resize", verbose=False).values())
    paths = [Path(agiri_root) / s for s in agiri.sources] + [Path(photos_root) / s for p in photos for s in p.sources]
    labels = np.concatenate([agiri.labels.numpy(), *[p.labels.numpy() for p in photos]])
    images = torch.cat([agiri.images, *[p.images for p in photos]])
    return audit.compare_sets(paths, labels, images)


def benchmark(report, variants_file):
    """The generalisation benchmark (`python code/variants.py --protocol floor / logo / lofo / oracle`): each
    development generator's AUROC against CIFAKE's test reals when it was unseen in training, per protocol and
    variant, beside the shipped strong model's; general_model's shipping decision. results.json "benchmark". Needs
    the generators section first."""
    runs = [run for run in json.loads(variants_file.read_text())["runs"] if "benchmark" in run] \
        if variants_file.is_file() else []
    if not runs:
        raise ProjectError(f"{variants_file.name} holds no benchmark run: run python code/variants.py --protocol logo "
                           f"(and floor, lofo, oracle)")
    rows = benchmark_table(runs)
    generators = list(dict.fromkeys(g for run in runs if run["benchmark"] == "logo" for g in run["unseen"]))
    shipped = report.results["generators"]["rows"]["strong_model"]
    per_generator = {f"{g} AUROC": shipped[f"{g} AUROC"] for g in generators}
    rows[GENERAL_RULE["against"]] = {"protocol": "shipped", "variant": "strong_model", "seeds": 1, **per_generator,
                                     "mean AUROC": float(np.mean(list(per_generator.values()))),
                                     "mean AUROC sd": 0.0, "CIFAKE test AUROC": shipped["CIFAKE test AUROC"],
                                     "training seconds": shipped["training seconds"]}
    decision, no_outside = general_decision(rows), no_outside_decision(rows)
    report.results["benchmark"] = {"generators": generators, "families": {g: family_of(g) for g in generators},
                                   "n_fake": report.results["generators"]["n_fake"],
                                   "n_real": report.results["generators"]["n_real"], "rows": rows,
                                   "decision": decision, "no outside generator": no_outside}
    report.text("## The generalisation benchmark: generators never seen in training",
                f"AUROC of each development generator's images against CIFAKE's "
                f"{report.results['generators']['n_real']:,} test reals, by a detector that never trained on it (logo: "
                "all the others in training; lofo: no generator of its family; floor: CIFAKE only; oracle: the base CNN "
                "with half of it in training, scored on the other half, not a bound on other detectors). Mean over seeds; `python code/variants.py --protocol P`.")
    table = pd.DataFrame(rows).T
    report.table(table[["seeds", *[f"{g} AUROC" for g in generators], "mean AUROC", "mean AUROC sd",
                        "CIFAKE test AUROC"]])
    verdict = "ships" if decision["ships"] else "does not ship"
    report.text(f"general_model {verdict}: rule {decision['rule']}; "
                + (f"gain {decision['gain']:+.3f} over {GENERAL_RULE['against']}, CIFAKE test AUROC "
                   f"{decision['CIFAKE test AUROC']:.4f}." if "gain" in decision else decision["why"] + "."))
    report.text("Per family: each row's mean AUROC over the family's development generators.")
    report.table(family_table(rows, report.results["benchmark"]["families"]))
    if no_outside["gains"]:
        report.text(f"Without an outside generator (rule {no_outside['rule']}): gains over the floor "
                    + ", ".join(f"{name} {gain:+.3f}" for name, gain in no_outside["gains"].items())
                    + f"; ships: {', '.join(no_outside['ships']) or 'none'}.")
    logo = table[table["protocol"] == "logo"]
    best = logo["mean AUROC"].astype(float).nlargest(2).index            # the benchmark's best rows, shown too
    bars = table.loc[[name for name in table.index if table.loc[name, "protocol"] in ("floor", "oracle", "shipped")
                      or name in (GENERAL_RULE["recipe"], "lofo: fast balanced", *best)],
                     [f"{g} AUROC" for g in generators]].astype(float).T
    bars.index = generators
    report.figure(figures.grouped_bars(bars, "AUROC when unseen", "each generator, never seen in training",
                                       reference=0.5), "benchmark.png", "the benchmark per generator")


def explanations(report, root, models, device, store, n=2000, explained=("base_model", "strong_model")):
    """Where the evidence lies: each model's Grad-CAM mass in the image's central quarter on `n` test images (the
    evidence for the predicted label), the attention model's SRM gates on every test image, and example maps."""
    test = load_cifake(root, "test", verbose=False)
    labels, subset = test.labels.numpy(), np.random.default_rng(0).choice(len(test), min(n, len(test)), replace=False)
    shares = {}
    for name, model in models.items():
        called_real = (store.scores(name, test, device) >= 0.5).astype(int)
        for method in CAM_METHODS:
            share = centre_share(cam_maps(model, test.images[subset], method, called_real[subset], device))
            by_label = {LABEL_NAMES[c]: float(share[labels[subset] == c].mean()) for c in (REAL, FAKE)}
            shares[f"{name} {method}"] = by_label
    results = {"n": len(subset), "centre share": shares}
    report.text(f"## Explanations ({len(subset)} test images)", "Share of the Grad-CAM heat in the central quarter "
                "of the image (0.25: no preference), by true label:")
    report.table(pd.DataFrame(shares).T)
    for name in [name for name in explained if name in models]:
        scores = store.scores(name, test, device)
        picks = [group[0] for group in pick_examples(labels, scores).values()]
        maps = cam_maps(models[name], test.images[picks], target=(scores[picks] >= 0.5).astype(int), device=device)
        report.figure(figures.explanation_grid(test.images[picks], maps, scores[picks], labels[picks],
                                               [overlay(test.images[i], m) for i, m in zip(picks, maps)], name),
                      f"gradcam_{name}.png", f"Grad-CAM of {name}")
    if "attn_model" in models:
        gates = srm_gates(models["attn_model"], test.images, device)
        table = gate_statistics(gates, labels)
        results.update(srm_gates=table.to_dict(orient="index"), srm_gates_n=len(test))
        report.text(f"### SRM gates of attn_model ({len(test)} test images)")
        report.table(table)
        report.figure(figures.gate_histograms(gates, labels), "srm_gates.png", "SRM gate distributions")
    report.results["explanations"] = results


def robustness(report, root, models, device, store):
    test = load_cifake(root, "test", verbose=False)
    table = perturbation_table(models, test, device, score=store.for_dataset(test))
    report.results["robustness"] = {"n": len(test), "threshold": 0.5, "results": [
        {"perturbation": p, "model": m, **row} for (p, m), row in table.to_dict(orient="index").items()]}
    report.text(f"## Robustness on CIFAKE test ({len(test)} images, threshold 0.5)",
                "`python code/robustness.py` gives the same table.")
    wide = wide_table(table)
    wide.columns = [f"{metric} {model}" for metric, model in wide.columns]
    report.table(wide)
    report.figure(figures.robustness_bars(table), "robustness.png", "accuracy and AUROC under perturbations")


def provenance(report, sidecars):
    """How each shipped model was made (architecture, recipe, the command that retrains it, split sizes) and the
    published figures the study is compared with, into results.json."""
    report.results["models"] = {name: {"arch": sidecar["arch"], "arch_kwargs": SHIPPED_MODELS[name].arch_kwargs,
                                       "recipe": {**{f: sidecar.get(f) for f in Recipe.__dataclass_fields__},
                                                  "name": SHIPPED_MODELS[name].recipe.name},
                                       "command": train_command(name),
                                       "n_train": sidecar["n_train"], "n_val": sidecar["n_val"]}
                                for name, sidecar in sidecars.items()}
    report.results["references"] = {"original study": ORIGINAL_STUDY.to_dict(),
                                    "original study, more": ORIGINAL_DETAILS,
                                    "CIFAKE paper accuracy": PAPER_ACCURACY, "CIFAKE paper CNNs": PAPER_CNNS,
                                    "anchors": ANCHORS, "held-back check": HELD_BACK}


def beside_the_original(report):
    """Our figures beside the original study's, at threshold 0.5, from results.json."""
    results = report.results
    ours = {"CIFAKE test accuracy": {m: r["accuracy"] for m, r in results.get("cifake_test", {}).get("models",
                                                                                                      {}).items()},
            "CIFAR-100 share called real": results.get("cifar100", {}).get("share_called_real", {}),
            "AGIRI accuracy": {key.rsplit(" ", 1)[0]: r["accuracy"] for key, r in results.get("agiri", {}).get(
                "models", {}).items() if key.endswith(" resize")}}
    table = pd.DataFrame({f"{metric} ({who})": table[metric] for metric in ORIGINAL_STUDY
                          for who, table in (("ours", pd.DataFrame(ours)), ("original", ORIGINAL_STUDY))
                          if metric in table and len(table[metric].dropna())}, index=list(SHIPPED_MODELS))
    if "agiri_subset" in results:                     # not AGIRI's test split: its own column, never the same one
        table[f"{AGIRI_SUBSET}, accuracy (ours)"] = pd.Series({m: results["agiri_subset"]["models"][f"{m} resize all"][
            "accuracy at 0.5"] for m in SHIPPED_MODELS if f"{m} resize all" in results["agiri_subset"]["models"]})
    report.text("## Beside the original study (threshold 0.5)", f"The CIFAKE paper's best CNN: {PAPER_ACCURACY:.2%}.")
    report.table(table)
