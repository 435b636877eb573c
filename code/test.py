"""Evaluate a trained model on a CIFAKE split.

    python code/test.py -thr 0.4                      # base_model on the CIFAKE test set at threshold 0.4
    python code/test.py -mf attn_model -thr val       # the threshold chosen on validation at training time
    python code/test.py --sample --json out.json      # on the generated sample data, every figure as JSON

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
from evaluate import confusion_table, evaluate_cifake, per_class_table
from project import ProjectError, model_path, pick_device
from train import cifake_root


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-mf", "--modelfile", default="base_model", help="config key, models/<name>.pth, or a path")
    parser.add_argument("-thr", "--threshold", default="0.5", help="a number in [0, 1], or 'val'")
    parser.add_argument("--split", default="test", choices=["test", "train"])
    parser.add_argument("--data", help="CIFAKE folder (default: config.json's CIFAKE_dir)")
    parser.add_argument("--sample", action="store_true", help="use the generated sample data (a stand-in)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    parser.add_argument("--plot", metavar="PATH", help="save the threshold-sweep figure")
    args = parser.parse_args(argv)

    device = pick_device(args.device)
    path = model_path(args.modelfile)
    model, checkpoint = load_model(path, device)
    threshold = parse_threshold(args.threshold, checkpoint)
    root = cifake_root(args.data, args.sample)
    dataset = load_cifake(root, args.split)
    train_set = load_cifake(root, "train", verbose=False) if args.split == "test" else None
    result, sweep, _ = evaluate_cifake(model, dataset, threshold, device, train_set)
    result = {"model": path.stem, "model_file": str(path), "dataset": dataset.name, "data_dir": str(root),
              "sample_data": args.sample, **result}

    pd.set_option("display.precision", 4)
    if args.sample:
        print("NOTE: sample data: generated stand-in images, not CIFAKE; figures are for testing only")
    print(f"\nmodel {path.stem} on {dataset.name}: n = {result['n']}, threshold {threshold:g}")
    print(f"accuracy {result['accuracy']:.4f}   ROC AUC {result['auroc']:.4f}   average precision {result['ap']:.4f}")
    print(f"\n{per_class_table(result).to_string()}\n\n{confusion_table(result).to_string()}")
    print(f"\nthreshold sweep:\n{sweep.to_string(index=False)}")
    if "deduplicated" in result:
        d = result["deduplicated"]
        print(f"\nwithout the {d['removed']} test files byte-identical to training files: "
              f"n = {d['n']}, accuracy {d['accuracy']:.4f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2, default=float) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        from figures import sweep_curves
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        sweep_curves(sweep, f"{path.stem} on {dataset.name}").savefig(args.plot, dpi=120, bbox_inches="tight")
        print(f"wrote {args.plot}")
    return result


if __name__ == "__main__":
    try:
        main()
    except ProjectError as e:
        sys.exit(f"error: {e}")
