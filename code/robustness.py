"""Detectors under the perturbations a detector meets in the wild (re-compression, resizing, blur, noise; the
operations themselves are in perturb.py).

    python code/robustness.py                          # every shipped model on CIFAKE test, each perturbation
    python code/robustness.py -mf strong_aug_model --json robust.json --plot robust.png

How it works: code/realfake/evaluation/robustness.py (the functions this command calls).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


from classes import load_cifake
from realfake import cli
from realfake.evaluation.robustness import perturbation_table, wide_table
from realfake.models.checkpoints import load_model
from realfake.project import ProjectError, cifake_root, model_file, model_path, pick_device


def main(argv=None):
    from realfake.training.recipes import SHIPPED_MODELS
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
        from realfake.publishing.figures import robustness_bars
        cli.save_figure(robustness_bars(table), args.plot)
    return table


if __name__ == "__main__":
    cli.run(main)
