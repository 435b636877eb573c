"""Evaluate a trained model on a CIFAKE split, or ask whether it catches the images of your generator.

    python code/test.py -thr 0.4                      # base_model on the CIFAKE test set at threshold 0.4
    python code/test.py -mf attn_model -thr val       # the threshold chosen on validation at training time
    python code/test.py --sample --json out.json      # on the generated sample data, every figure as JSON
    python code/test.py -mf strong_model --fakes my_generator/ [--reals my_photos/] [--json out.json]
    python code/test.py -mf agiri_model               # the full-size detector on its own held-out AGIRI fold

On a CIFAKE split it prints n, accuracy, per-class precision / recall / F1, the confusion matrix, ROC AUC, average
precision, 95% bootstrap intervals, the threshold sweep 0.1..0.9, and (on the test set) the accuracy without the
test files that are byte-identical to training files.

With --fakes, every image under the folder (recursively, any format the loaders read) is scored as FAKE against
CIFAKE's test/REAL photographs, or against --reals: first a one-line audit of what besides the images tells the two
folders apart, then AUROC, AP, accuracy at the threshold (default: the model's validation threshold), the share of
fakes caught and of reals kept, each with a 95% bootstrap interval. Unreadable files are listed with the reason and
make the exit code 1. Robustness to perturbations: `python code/robustness.py`.

A full-size model (train.py --arch pretrained --dataset agiri) is scored on the fold its sidecar says was held out
(read from config.json's AGIRI subset, or --data): AUROC, AP and accuracy with 95% bootstrap intervals, on all fakes
and on the JPEG fakes alone.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd

from classes import load_cifake
from realfake import FAKE, REAL, cli
from realfake.data.imagefiles import find_image_files
from realfake.evaluation import audit
from realfake.evaluation.robustness import by_short_side
from realfake.evaluation.scoring import evaluate_cifake, evaluate_fakes, parse_threshold
from realfake.metrics import (
    bootstrap_intervals,
    confusion_table,
    figures_with_intervals,
    per_class_table,
    shown_interval,
)
from realfake.models.checkpoints import load_model, read_sidecar
from realfake.models.inference import VERDICTS, predict_verdicts, score_dataset
from realfake.project import (
    DOWNLOAD_HINT,
    ProjectError,
    absolute,
    cifake_root,
    model_path,
    pick_device,
    shown,
)
from realfake.publishing.publish import full_size_notice, out_of_domain_notice
from realfake.training.pretrained import held_out_root, jpeg_mask, load_held_out


def main(argv=None):
    parser = cli.parser(__doc__, data="CIFAKE folder")
    parser.add_argument("-mf", "--model-file", default="base_model",
                        help="config key, models/<name>.pth, or a path (default base_model)")
    parser.add_argument("-thr", "--threshold", help="a number in [0, 1], or 'val' (default 0.5; with --fakes, val)")
    parser.add_argument("--split", default="test", choices=["test", "train"])
    parser.add_argument("--fakes", metavar="DIR", help="score every image below DIR as generated")
    parser.add_argument("--reals", metavar="DIR", help="with --fakes: real images to compare with (default CIFAKE's "
                                                       "test/REAL)")
    parser.add_argument("--sizes", nargs="+", type=cli.positive_int, metavar="PX", default=[],
                        help="a full-size model on its held-out fold: also each image shrunk to PX px and decoded back "
                             "as predict.py decodes a small image (what routing by size should know)")
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    parser.add_argument("--plot", metavar="PATH", help="save the threshold-sweep figure")
    args = cli.parse(parser, argv)
    if args.reals and not args.fakes:
        raise ProjectError("--reals goes with --fakes DIR (the generated images to compare them with)")

    device = pick_device(args.device)
    path = model_path(args.model_file)
    model, checkpoint = load_model(path, device)
    held_out = checkpoint["arch"] == "pretrained" and "held_out" in read_sidecar(path)
    threshold = parse_threshold(args.threshold or ("val" if args.fakes or held_out else "0.5"), checkpoint)
    if held_out and not args.fakes:
        return test_held_out(args, model, path, threshold, device)
    if args.fakes:
        return test_fakes(args, model, path, threshold, device)

    root = cifake_root(args.data, args.sample)
    dataset = load_cifake(root, args.split)
    train_set = load_cifake(root, "train", verbose=False) if args.split == "test" else None
    result, sweep, scores = evaluate_cifake(model, dataset, threshold, device, train_set)
    result = {"model": path.stem, "model_file": shown(path), "dataset": dataset.name, "data_dir": shown(root),
              "sample_data": args.sample, "temperature": model.temperature, **result,
              "interval95": bootstrap_intervals(dataset.labels.numpy(), scores, threshold)}   # 3 s for 20,000 images

    pd.set_option("display.precision", 4)
    print(f"\nmodel {path.stem} on {dataset.name}: n = {result['n']}, threshold {threshold:g}")
    intervals = result["interval95"]
    print(f"accuracy {result['accuracy']:.4f} {shown_interval(intervals['accuracy'])} (95% bootstrap interval)   "
          f"ROC AUC {result['auroc']:.4f} {shown_interval(intervals['auroc'])}   average precision {result['ap']:.4f}")
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
        from realfake.publishing.figures import sweep_curves
        cli.save_figure(sweep_curves(sweep, f"{path.stem} on {dataset.name}"), args.plot)
    return result


def test_fakes(args, model, path, threshold, device):
    """--fakes: the folder's images against real ones. Returns the exit code (1 when any file was skipped)."""
    reals = absolute(args.reals) if args.reals else cifake_root(args.data, args.sample) / "test" / "REAL"
    if not args.reals and not reals.is_dir():
        raise ProjectError(f"CIFAKE's real test images not found in {shown(reals)}: {DOWNLOAD_HINT}, or give --reals")
    files = {}
    for side, folder in (("fakes", absolute(args.fakes)), ("reals", reals)):
        files[side] = find_image_files([folder])
        if not files[side]:
            raise ProjectError(f"no file found in {shown(folder)} (--{side}): give a folder of images")
    full_size = model.config["arch"] == "pretrained"          # scored as predict.py scores a user's images
    result, table, images = evaluate_fakes(model, files["fakes"], files["reals"], threshold, device, path.stem,
                                           model.config.get("decoding", "full") if full_size else "resize")
    labels = (table["true_label"] == "Real").to_numpy().astype(int)
    checks = audit.compare_sets(table["path"], labels, images)
    result = {"model": path.stem, "model_file": shown(path), "dataset": f"{shown(args.fakes)} vs {shown(reals)}",
              "fakes_dir": shown(args.fakes), "reals_dir": shown(reals), "sample_data": args.sample,
              "temperature": model.temperature, **result,
              "audit": {"metadata_auroc": (checks["metadata"] or {}).get("auroc"),
                        "metadata_auroc_95": (checks["metadata"] or {}).get("auroc_95"),
                        "metadata_features": (checks["metadata"] or {}).get("features"),
                        "colour_auroc": (checks["colour"] or {}).get("auroc"),
                        "colour_auroc_95": (checks["colour"] or {}).get("auroc_95"), "flag": checks["flag"],
                        "not_run": checks["not_run"]}}

    interval = lambda key: shown_interval(result["interval95"][key])
    print("\n" + "\n".join(audit.comparison_lines(checks)))
    print(f"\nmodel {path.stem}: {result['n_fake']} fakes in {result['fakes_dir']} against {result['n_real']} reals in "
          f"{result['reals_dir']}, threshold {threshold:.3f}")
    print(f"AUROC {result['auroc']:.4f} {interval('auroc')}   average precision {result['ap']:.4f} {interval('ap')}")
    print(f"accuracy {result['accuracy']:.4f} {interval('accuracy')}   fakes caught {result['fakes_caught']:.4f} "
          f"{interval('fakes_caught')}   reals kept {result['reals_kept']:.4f} {interval('reals_kept')}   "
          f"(95% bootstrap intervals)")
    notice = full_size_notice(table, path.stem) if full_size else out_of_domain_notice(table, path.stem)
    if notice:
        print(notice)
    for file, reason in result["skipped"]:
        print(f"skipped {shown(file)}: {reason}", file=sys.stderr)
    if args.json:
        cli.write_json(args.json, result)
    return 1 if result["skipped"] else 0


def test_held_out(args, model, path, threshold, device):
    """A full-size model on its own held-out fold: every figure with 95% intervals, all fakes and JPEG fakes."""
    sidecar = read_sidecar(path)
    root = absolute(args.data) if args.data else held_out_root(sidecar, args.sample)
    held, formats = load_held_out(sidecar, root)
    labels, verdict = held.labels.numpy(), None
    if getattr(model, "ood_components", 0):                   # photo_model: P(real) and its three verdicts, one pass
        scores, verdict = predict_verdicts(model, held.images, device)
    else:
        scores = score_dataset(model, held, device)
    keep = jpeg_mask(labels, formats)
    result = {"model": path.stem, "model_file": shown(path), "dataset": held.name, "data_dir": shown(root),
              "threshold": threshold, "temperature": model.temperature,
              "all fakes": figures_with_intervals(labels, scores, threshold),
              "JPEG fakes": figures_with_intervals(labels[keep], scores[keep], threshold)}
    if verdict is not None:
        result["verdicts"] = {side: {v: float((verdict[labels == label] == v).mean()) for v in VERDICTS}
                              for side, label in (("reals", REAL), ("fakes", FAKE))}
    fake = labels == FAKE
    print(f"\nmodel {path.stem} on {held.name}: {len(labels)} images ({int(fake.sum())} fake, "
          f"{int((keep & fake).sum())} of them JPEG), threshold {threshold:.3f}")
    for fakes in ("all fakes", "JPEG fakes"):
        r = result[fakes]
        band = lambda key: shown_interval(None if r[f"{key}, 95% low"] is None else (r[f"{key}, 95% low"],
                                                                                     r[f"{key}, 95% high"]))
        print(f"{fakes:10s}: AUROC {r['auroc']:.4f} {band('auroc')}   AP {r['ap']:.4f} {band('ap')}   accuracy "
              f"{r['accuracy']:.4f} {band('accuracy')} (95% bootstrap intervals)")
    for side, shares in result.get("verdicts", {}).items():
        print(f"{side}: " + ", ".join(f"{share:.1%} {v}" for v, share in shares.items()))
    if args.sizes:
        result["by short side"] = by_short_side(model, held, labels, keep, threshold, args.sizes, device)
        print("\nas if the images had been smaller (shrunk, then decoded back to the model's size as predict.py does):")
    for side, row in result.get("by short side", {}).items():
        print(f"{side:4d} px: " + "   ".join(f"{name} {value:.4f}" for name, value in row.items()))
    if args.json:
        cli.write_json(args.json, result)
    return result


if __name__ == "__main__":
    cli.run(main)
