"""Score your own images: P(real) for every image file, of any size, mode and format PIL reads.

    python code/predict.py photo.jpg my_folder/                    # base_model, its validation threshold
    python code/predict.py my_folder -mf attn_model --preprocess multi_crop --csv scores.csv
    python code/predict.py my_folder --explain heatmaps/             # also save a Grad-CAM overlay per image

Folders are searched recursively. Files that cannot be read are listed with the reason and do not
stop the run; the exit code is 1 when any file failed, else 0.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd

from classes import AGIRI_MAX_PIXELS, LABEL_NAMES, PREPROCESSINGS, crops_per_image, decode_files, load_model
from evaluate import parse_threshold, predict_scores
from project import ProjectError, model_path, pick_device


def find_files(paths):
    """Every file named, and every file below every folder named (sorted), without repeats."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise ProjectError(f"{path}: no such file or folder")
    return list(dict.fromkeys(found))


def predict_files(model, files, threshold, preprocess="resize", device="cpu", model_name="model"):
    """(table with one row per readable file, [(file, reason)] for the others)."""
    images, ok, failed, _ = decode_files(files, preprocess, AGIRI_MAX_PIXELS, desc="reading images")
    scores = predict_scores(model, images, device, crops_per_image=crops_per_image(preprocess))
    table = pd.DataFrame({"path": [str(files[i]) for i in ok], "p_real": scores,
                          "label": [LABEL_NAMES[int(s >= threshold)] for s in scores], "model": model_name,
                          "threshold": threshold, "preprocess": preprocess})
    return table, [(str(files[i]), reason) for i, reason in failed], images


def save_explanations(model, images, table, folder, device="cpu"):
    """One PNG per image: the image beside its Grad-CAM overlay (evidence for the predicted label)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from explain import cam_maps, overlay
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    k = len(images) // max(1, len(table))
    first_crops = images[::k]                          # with several crops per image, explain the first
    for i, row in enumerate(table.itertuples()):
        target = int(row.label == "Real")
        heat = cam_maps(model, first_crops[i:i + 1], target=target, device=device)[0]
        fig, (left, right) = plt.subplots(1, 2, figsize=(4, 2.2))
        left.imshow(first_crops[i].permute(1, 2, 0).numpy())
        right.imshow(overlay(first_crops[i], heat))
        for ax in (left, right):
            ax.axis("off")
        fig.suptitle(f"P(real) {row.p_real:.2f}: {row.label}", fontsize=9)
        fig.savefig(folder / f"{i:05d}_{Path(row.path).stem}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="image files and folders")
    parser.add_argument("-mf", "--modelfile", default="base_model")
    parser.add_argument("-thr", "--threshold", default="val", help="a number in [0, 1], or 'val' (the default)")
    parser.add_argument("--preprocess", choices=PREPROCESSINGS, default="resize")
    parser.add_argument("--csv", metavar="FILE")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--explain", metavar="DIR", help="save a Grad-CAM overlay of each image here")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    device = pick_device(args.device)
    path = model_path(args.modelfile)
    model, checkpoint = load_model(path, device)
    threshold = parse_threshold(args.threshold, checkpoint)
    files = find_files(args.paths)
    table, failed, images = predict_files(model, files, threshold, args.preprocess, device, path.stem)
    with pd.option_context("display.max_rows", 50, "display.max_colwidth", 60):
        print(table[["path", "p_real", "label"]].to_string(index=False, float_format=lambda v: f"{v:.4f}")
              if len(table) else "no readable images")
    print(f"\n{len(table)} of {len(files)} files scored with {path.stem} at threshold {threshold:.3f} "
          f"({args.preprocess}): {int((table['label'] == 'Real').sum())} called real")
    for file, reason in failed:
        print(f"skipped {file}: {reason}", file=sys.stderr)
    if args.csv:
        table.to_csv(args.csv, index=False)
    if args.json:
        table.to_json(args.json, orient="records", indent=2)
    if args.explain:
        save_explanations(model, images, table, args.explain, device)
        print(f"wrote {len(table)} explanations to {args.explain}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ProjectError as e:
        sys.exit(f"error: {e}")
