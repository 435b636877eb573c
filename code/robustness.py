"""Detectors under the perturbations a detector meets in the wild (re-compression, resizing, blur, noise; the
operations themselves are in perturb.py).

    python code/robustness.py                          # every shipped model on CIFAKE test, each perturbation
    python code/robustness.py -mf strong_aug_model --json robust.json --plot robust.png
"""
import functools
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cli
from checkpoints import load_model
from classes import load_cifake
from evaluate import predict_logits, probability, score_at_threshold, temperature_of
from perturb import blur, jpeg, noise, rescale
from project import ProjectError, cifake_root, model_file, model_path, pick_device


PERTURBATIONS = {
    "none": lambda x: x,
    "jpeg q90": lambda x: jpeg(x, 90),
    "jpeg q75": lambda x: jpeg(x, 75),
    "jpeg q50": lambda x: jpeg(x, 50),
    "downscale 24 px": lambda x: rescale(x, 24),
    "blur sigma 0.5": lambda x: blur(x, 0.5),
    "blur sigma 1.0": lambda x: blur(x, 1.0),
    "horizontal flip": lambda x: x.flip(3),
    "noise std 4": lambda x: noise(x, 4.0),
}


def perturbation_table(models, dataset, device="cpu", perturbations=PERTURBATIONS, threshold=0.5, score=None):
    """Accuracy (at `threshold`) and AUROC of each model on `dataset` under each perturbation: a DataFrame indexed
    by (perturbation, model). `score(model_name, perturbation_name, compute)` may stand between the table and
    `compute()`, which returns the model's logits (reproduce.py keeps them on disk that way)."""
    rows, labels = {}, dataset.labels.numpy()
    score = score or (lambda model_name, perturbation_name, compute: compute())
    for name, perturb in perturbations.items():
        perturbed = functools.cache(lambda perturb=perturb: perturb(dataset.images))    # once, and only if needed
        for model_name, model in models.items():
            compute = lambda model=model: predict_logits(model, perturbed(), device)
            scores = probability(score(model_name, name, compute), temperature_of(model))
            r = score_at_threshold(labels, scores, threshold)
            rows[name, model_name] = {"accuracy": r["accuracy"], "auroc": r["auroc"]}
    return pd.DataFrame(rows).T.rename_axis(["perturbation", "model"])


def wide_table(table):
    """A perturbation_table as one row per perturbation (in PERTURBATIONS order), one column per metric and model."""
    return table.unstack("model").loc[[p for p in PERTURBATIONS if p in table.index.get_level_values(0)]]


def main(argv=None):
    from training import SHIPPED_MODELS
    parser = cli.parser(__doc__, data="CIFAKE folder")
    parser.add_argument("-mf", "--model-file", help="one model (config key, name or path; default: every shipped one)")
    parser.add_argument("--split", default="test", choices=["test", "train"])
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    parser.add_argument("--plot", metavar="PATH", help="save the bar chart")
    args = cli.parse(parser, argv)
    device = pick_device(args.device)
    if args.model_file:
        paths = [model_path(args.model_file)]
    else:
        paths = [p for p in (model_file(name, args.sample) for name in SHIPPED_MODELS) if p.is_file()]
    if not paths:
        raise ProjectError("no trained models found: train them first (python code/reproduce.py trains any missing)")
    models = {p.stem: load_model(p, device)[0] for p in paths}
    dataset = load_cifake(cifake_root(args.data, args.sample), args.split)
    table = perturbation_table(models, dataset, device)
    print(f"\nrobustness on {dataset.name} (n = {len(dataset)}, threshold 0.5):\n"
          f"{wide_table(table).to_string(float_format=lambda v: f'{v:.4f}')}")
    if args.json:
        records = [{"perturbation": p, "model": m, **row} for (p, m), row in table.to_dict(orient="index").items()]
        cli.write_json(args.json, {"dataset": dataset.name, "n": len(dataset), "threshold": 0.5,
                                   "sample_data": args.sample, "results": records})
    if args.plot:
        from figures import robustness_bars
        cli.save_figure(robustness_bars(table), args.plot)
    return table


if __name__ == "__main__":
    cli.run(main)
