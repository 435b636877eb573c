"""Evaluate a trained model on a CIFAKE split.

    python code/test.py -thr 0.4                      # base_model on the CIFAKE test set at threshold 0.4
    python code/test.py -mf attn_model -thr val       # the threshold chosen on validation at training time
    python code/test.py --sample --json out.json      # on the generated sample data, every figure as JSON

Prints n, accuracy, per-class precision / recall / F1, the confusion matrix, ROC AUC, average precision, 95%
bootstrap intervals, the threshold sweep 0.1..0.9, and (on the test set) the accuracy without the test files
that are byte-identical to training files. Robustness to perturbations: `python code/robustness.py`.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd

import cli
from classes import load_cifake, load_model
from evaluate import bootstrap_intervals, confusion_table, evaluate_cifake, parse_threshold, per_class_table
from project import cifake_root, model_path, pick_device, shown


def main(argv=None):
    parser = cli.parser(__doc__, data="CIFAKE folder")
    parser.add_argument("-mf", "--model-file", default="base_model",
                        help="config key, models/<name>.pth, or a path (default base_model)")
    parser.add_argument("-thr", "--threshold", default="0.5", help="a number in [0, 1], or 'val'")
    parser.add_argument("--split", default="test", choices=["test", "train"])
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    parser.add_argument("--plot", metavar="PATH", help="save the threshold-sweep figure")
    args = cli.parse(parser, argv)

    device = pick_device(args.device)
    path = model_path(args.model_file)
    model, checkpoint = load_model(path, device)
    threshold = parse_threshold(args.threshold, checkpoint)
    root = cifake_root(args.data, args.sample)
    dataset = load_cifake(root, args.split)
    train_set = load_cifake(root, "train", verbose=False) if args.split == "test" else None
    result, sweep, scores = evaluate_cifake(model, dataset, threshold, device, train_set)
    result = {"model": path.stem, "model_file": shown(path), "dataset": dataset.name, "data_dir": shown(root),
              "sample_data": args.sample, "temperature": model.temperature, **result,
              "interval95": bootstrap_intervals(dataset.labels.numpy(), scores, threshold)}   # 8 s for 20,000 images

    pd.set_option("display.precision", 4)
    print(f"\nmodel {path.stem} on {dataset.name}: n = {result['n']}, threshold {threshold:g}")
    (acc_low, acc_high), (auc_low, auc_high) = result["interval95"]["accuracy"], result["interval95"]["auroc"]
    print(f"accuracy {result['accuracy']:.4f} (95% bootstrap interval {acc_low:.4f}-{acc_high:.4f})   "
          f"ROC AUC {result['auroc']:.4f} ({auc_low:.4f}-{auc_high:.4f})   average precision {result['ap']:.4f}")
    print(f"expected calibration error {result['ece']:.4f} (15 bins; temperature {model.temperature:.3f}, "
          f"fitted on validation)")
    print(f"\n{per_class_table(result).to_string()}\n\n{confusion_table(result).to_string()}")
    print(f"\nthreshold sweep:\n{sweep.to_string(index=False)}")
    if "deduplicated" in result:
        d = result["deduplicated"]
        print(f"\nwithout the {d['removed']} test files byte-identical to training files: "
              f"n = {d['n']}, accuracy {d['accuracy']:.4f}")
    if args.json:
        cli.write_json(args.json, result)
    if args.plot:
        from figures import sweep_curves
        cli.save_figure(sweep_curves(sweep, f"{path.stem} on {dataset.name}"), args.plot)
    return result


if __name__ == "__main__":
    cli.run(main)
