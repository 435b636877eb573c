"""Score your own images: P(real) for every image file, of any size, mode and format PIL reads.

    python code/predict.py photo.jpg my_folder/                    # the card's default model, its validation threshold
    python code/predict.py my_folder -mf attn_model --preprocess multi_crop --csv scores.csv
    python code/predict.py my_folder --explain heatmaps/             # also save a Grad-CAM overlay per image

P(real) is calibrated (temperature fitted on the model's validation split). Each image gets a verdict: real, fake
or uncertain. Images are routed by size: one whose short side is over FULL_SIZE_ABOVE pixels goes to the model card's
full-size model (photo_model, on the pretrained backbone), the others to the 32 x 32 model the card picks; each row
names the model that scored it, and -mf scores every image with one model. The full-size model's verdict is uncertain
where P(real) lies in its band or the image is unlike its training images, and for every image when it fails
rules.PHOTO_RULE; a 32 px model's verdict is uncertain for an image that is not 32 x 32. For images outside a
model's training domain the run says how many there were and what the model card measured for that model elsewhere
(the `in_domain` column is False for 32 px models given other sizes). Folders are searched recursively.
Files that cannot be read are listed with the reason and do not stop the run; the exit code is 1 when any file
failed or no image was found, else 0.
"""
import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd
from PIL import Image

from realfake import cli
from realfake.data.imagefiles import PREPROCESSINGS, find_image_files
from realfake.evaluation.scoring import parse_threshold, score_files
from realfake.models.checkpoints import load_model
from realfake.models.inference import VERDICTS
from realfake.project import model_path, pick_device, shown
from realfake.publishing.publish import MODEL_CARD, full_size_notice, out_of_domain_notice
from realfake.rules import FALLBACK_MODEL, FULL_SIZE_ABOVE


def card_default(card=MODEL_CARD):
    """The model the model card names as predict.py's default (rules.DEFAULT_MODEL_RULE), or None."""
    chosen = json.loads(Path(card).read_text()).get("default_model") if Path(card).is_file() else None
    return chosen["model"] if chosen else None


def default_model_name(card=MODEL_CARD):
    """card_default, else FALLBACK_MODEL."""
    return card_default(card) or FALLBACK_MODEL


def full_size_model(card=MODEL_CARD):
    """(name, gives verdicts) of the full-size model the card routes large images to (publish.full_size_entry), or
    (None, False). A model judged by rules.PHOTO_RULE scores them whether or not it gives verdicts; one judged only by
    the older FULL_SIZE_SHIPPING_RULE scores them and gives verdicts when it ships."""
    entry = json.loads(Path(card).read_text()).get("full_size_model") if Path(card).is_file() else None
    if not entry or not entry.get("ships"):
        return None, False
    return entry["model"], bool(entry.get("gives verdicts", True))


def short_side(file):
    """An image file's short side in pixels, from its header (0 when it cannot be read: scored, and reported, by the
    32 px model)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(file) as img:
                return min(img.size)
    except Exception:
        return 0


def route(files, small_model, full_model):
    """{model name: its files}: over FULL_SIZE_ABOVE px to `full_model` (when there is one), the rest to
    `small_model`; models with no file are left out."""
    large = [f for f in files if full_model and short_side(f) > FULL_SIZE_ABOVE]
    chosen = set(large)
    routes = {small_model: [f for f in files if f not in chosen], full_model: large}
    return {name: group for name, group in routes.items() if name and group}


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
    files = find_image_files(args.paths)
    if not files:
        print(f"no image found in {', '.join(args.paths)}", file=sys.stderr)
        return 1
    if not args.model_file and card_default() is None:
        print(f"note: the model card ({shown(MODEL_CARD)}) names no default model (python code/reproduce.py writes "
              f"it): scoring with {FALLBACK_MODEL}", file=sys.stderr)
    large_model, verdicts = full_size_model()
    routes = {args.model_file: files} if args.model_file else route(files, default_model_name(), large_model)
    tables, failed, explained = [], [], []
    for name, group in routes.items():
        path = model_path(name)
        model, checkpoint = load_model(path, device)
        threshold = parse_threshold(args.threshold, checkpoint)
        full_size = checkpoint["arch"] == "pretrained"
        preprocess = checkpoint["arch_kwargs"].get("decoding", "full") if full_size else args.preprocess
        gives_verdicts = not full_size or path.stem != large_model or verdicts
        table, skipped, images = score_files(model, group, threshold, preprocess, device, path.stem, gives_verdicts)
        tables.append(table)
        failed += skipped
        counts = table["verdict"].value_counts()
        print(f"{len(table)} of {len(group)} files scored with {path.stem} at threshold {threshold:.3f} "
              f"({preprocess}): " + ", ".join(f"{int(counts.get(v, 0))} {v}" for v in VERDICTS))
        notice = full_size_notice(table, path.stem) if full_size else out_of_domain_notice(table, path.stem)
        if notice:
            print(notice)
        if not full_size:
            explained.append((model, images, table))
    table = pd.concat(tables, ignore_index=True)
    with pd.option_context("display.max_rows", 50, "display.max_colwidth", 60):
        print("\n" + (table[["path", "p_real", "verdict", "model"]].to_string(
            index=False, float_format=lambda v: f"{v:.4f}") if len(table) else "no readable images"))
    for file, reason in failed:
        print(f"skipped {file}: {reason}", file=sys.stderr)
    if args.csv:
        table.to_csv(args.csv, index=False)
    if args.json:
        table.to_json(args.json, orient="records", indent=2)
    if args.explain:                                  # Grad-CAM is set up for the 32 px networks only
        from realfake.evaluation.explain import save_overlays
        for model, images, scored in explained:
            save_overlays(model, images, scored, args.explain, device)
        print(f"wrote {sum(len(t) for _, _, t in explained)} explanations to {args.explain}"
              + (" (the full-size model's rows have none)" if len(explained) < len(routes) else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    cli.run(main)
