"""Evaluate a trained model on a CIFAKE split.

    python code/test.py -thr 0.4                      # base_model on the CIFAKE test set at threshold 0.4
    python code/test.py -mf attn_model -thr val       # the threshold chosen on validation at training time
    python code/test.py --sample --json out.json      # on the generated sample data, every figure as JSON
    python code/test.py --perturb --plot robust.png   # every shipped model under JPEG, resize, blur, flip, noise
    python code/test.py --perturb -mf strong_aug_model   # just one model under the same perturbations

Prints n, accuracy, per-class precision / recall / F1, the confusion matrix, ROC AUC, average
precision, the threshold sweep 0.1..0.9, and (on the real test set) the accuracy without the test
files that are byte-identical to training files.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd

from classes import load_cifake, load_model
from evaluate import bootstrap_intervals, confusion_table, evaluate_cifake, parse_threshold, per_class_table
from project import ProjectError, model_path, pick_device
from train import cifake_root


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-mf", "--modelfile", help="config key, models/<name>.pth, or a path (default: base_model; "
                                                   "with --perturb, every shipped model)")
    parser.add_argument("-thr", "--threshold", default="0.5", help="a number in [0, 1], or 'val'")
    parser.add_argument("--split", default="test", choices=["test", "train"])
    parser.add_argument("--data", help="CIFAKE folder (default: config.json's CIFAKE_dir)")
    parser.add_argument("--sample", action="store_true", help="use the generated sample data (a stand-in)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    parser.add_argument("--plot", metavar="PATH", help="save the threshold-sweep figure")
    parser.add_argument("--perturb", action="store_true",
                        help="robustness: every shipped model (or -mf's) on the split under each perturbation "
                             "(robustness.py)")
    args = parser.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")                              # figures are written to files, never shown
    if args.perturb:
        return perturb_main(args)

    device = pick_device(args.device)
    path = model_path(args.modelfile or "base_model")
    model, checkpoint = load_model(path, device)
    threshold = parse_threshold(args.threshold, checkpoint)
    root = cifake_root(args.data, args.sample)
    dataset = load_cifake(root, args.split)
    train_set = load_cifake(root, "train", verbose=False) if args.split == "test" else None
    result, sweep, scores = evaluate_cifake(model, dataset, threshold, device, train_set)
    result = {"model": path.stem, "model_file": str(path), "dataset": dataset.name, "data_dir": str(root),
              "sample_data": args.sample, **result,
              "interval95": bootstrap_intervals(dataset.labels.numpy(), scores, threshold)}   # 8 s for 20,000 images

    pd.set_option("display.precision", 4)
    if args.sample:
        print("NOTE: sample data: generated stand-in images, not CIFAKE; figures are for testing only")
    print(f"\nmodel {path.stem} on {dataset.name}: n = {result['n']}, threshold {threshold:g}")
    (acc_low, acc_high), (auc_low, auc_high) = result["interval95"]["accuracy"], result["interval95"]["auroc"]
    print(f"accuracy {result['accuracy']:.4f} (95% bootstrap interval {acc_low:.4f}-{acc_high:.4f})   "
          f"ROC AUC {result['auroc']:.4f} ({auc_low:.4f}-{auc_high:.4f})   average precision {result['ap']:.4f}")
    print(f"\n{per_class_table(result).to_string()}\n\n{confusion_table(result).to_string()}")
    print(f"\nthreshold sweep:\n{sweep.to_string(index=False)}")
    if "deduplicated" in result:
        d = result["deduplicated"]
        print(f"\nwithout the {d['removed']} test files byte-identical to training files: "
              f"n = {d['n']}, accuracy {d['accuracy']:.4f}")
    if args.json:
        write_json(args.json, result)
    if args.plot:
        from figures import sweep_curves
        save_figure(sweep_curves(sweep, f"{path.stem} on {dataset.name}"), args.plot)
    return result


def perturb_main(args):
    """test.py --perturb: accuracy and AUROC of every shipped model (or the one given by -mf) under every
    perturbation."""
    from robustness import perturbation_table, wide_table
    from train import MODEL_RECIPES, model_file
    device = pick_device(args.device)
    if args.modelfile:
        paths = [model_path(args.modelfile)]
    else:
        paths = [p for p in (model_file(n, args.sample) for n in MODEL_RECIPES) if p.is_file()]
    if not paths:
        raise ProjectError("no trained models found for --perturb: train them first (see README)")
    models = {p.stem: load_model(p, device)[0] for p in paths}
    dataset = load_cifake(cifake_root(args.data, args.sample), args.split)
    table = perturbation_table(models, dataset, device)
    print(f"\nrobustness on {dataset.name} (n = {len(dataset)}, threshold 0.5):\n"
          f"{wide_table(table).to_string(float_format=lambda v: f'{v:.4f}')}")
    if args.json:
        records = [{"perturbation": p, "model": m, **row} for (p, m), row in table.to_dict(orient="index").items()]
        write_json(args.json, {"dataset": dataset.name, "n": len(dataset), "threshold": 0.5,
                               "sample_data": args.sample, "results": records})
    if args.plot:
        from figures import robustness_bars
        save_figure(robustness_bars(table), args.plot)
    return table


def write_json(path, data):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, default=float) + "\n")
    print(f"wrote {path}")


def save_figure(fig, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {path}")


if __name__ == "__main__":
    try:
        main()
    except ProjectError as e:
        sys.exit(f"error: {e}")
