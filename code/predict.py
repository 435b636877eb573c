"""Score your own images: P(real) for every image file, of any size, mode and format PIL reads.

    python code/predict.py photo.jpg my_folder/                    # the card's default model, its validation threshold
    python code/predict.py my_folder -mf attn_model --preprocess multi_crop --csv scores.csv
    python code/predict.py my_folder --explain heatmaps/             # also save a Grad-CAM overlay per image

P(real) is calibrated (temperature fitted on the model's validation split). The models know only 32 x 32 CIFAKE
images: for any other size the run says how many such images there were and what the model card measured for
that model on larger images, and the table's `in_domain` column is False. Folders are searched recursively.
Files that cannot be read are listed with the reason and do not stop the run; the exit code is 1 when any file
failed or no image was found, else 0.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd

import cli
from checkpoints import load_model
from evaluate import MODEL_CARD, out_of_domain_notice, parse_threshold, score_files
from imagefiles import find_image_files
from imagefiles import PREPROCESSINGS
from project import model_path, pick_device


FALLBACK_MODEL = "strong_model"          # the most accurate on CIFAKE, when the card names no default


def default_model_name(card=MODEL_CARD):
    """The model the model card names as predict.py's default (publish.DEFAULT_RULE), else FALLBACK_MODEL."""
    chosen = json.loads(Path(card).read_text()).get("default_model") if Path(card).is_file() else None
    return chosen["model"] if chosen else FALLBACK_MODEL


def main(argv=None):
    parser = cli.parser(__doc__, sample=False)
    parser.add_argument("paths", nargs="+", help="image files and folders")
    parser.add_argument("-mf", "--model-file", help="config key, models/<name>.pth, or a path (default: the model "
                                                    "card's choice, by the rule it states)")
    parser.add_argument("-thr", "--threshold", default="val", help="a number in [0, 1], or 'val' (the default)")
    parser.add_argument("--preprocess", choices=PREPROCESSINGS, default="resize")
    parser.add_argument("--csv", metavar="FILE")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--explain", metavar="DIR", help="save a Grad-CAM overlay of each image here")
    args = cli.parse(parser, argv)

    device = pick_device(args.device)
    path = model_path(args.model_file or default_model_name())
    model, checkpoint = load_model(path, device)
    threshold = parse_threshold(args.threshold, checkpoint)
    files = find_image_files(args.paths)
    if not files:
        print(f"no image found in {', '.join(args.paths)}", file=sys.stderr)
        return 1
    table, failed, images = score_files(model, files, threshold, args.preprocess, device, path.stem)
    with pd.option_context("display.max_rows", 50, "display.max_colwidth", 60):
        print(table[["path", "p_real", "label"]].to_string(index=False, float_format=lambda v: f"{v:.4f}")
              if len(table) else "no readable images")
    print(f"\n{len(table)} of {len(files)} files scored with {path.stem} at threshold {threshold:.3f} "
          f"({args.preprocess}): {int((table['label'] == 'Real').sum())} called real")
    notice = out_of_domain_notice(table, path.stem)
    if notice:
        print(notice)
    for file, reason in failed:
        print(f"skipped {file}: {reason}", file=sys.stderr)
    if args.csv:
        table.to_csv(args.csv, index=False)
    if args.json:
        table.to_json(args.json, orient="records", indent=2)
    if args.explain:
        from explain import save_overlays
        save_overlays(model, images, table, args.explain, device)
        print(f"wrote {len(table)} explanations to {args.explain}")
    return 1 if failed else 0


if __name__ == "__main__":
    cli.run(main)
