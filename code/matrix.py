"""The transfer matrix: what a detector learns from each training set, with and without a pretrained backbone, and
where it carries over.

    python code/matrix.py                    # every row, scored on every column -> notes/results/matrix.json
    python code/matrix.py --sample           # the pipeline on the sample data (tiny models) -> data/sample/results/
    python code/matrix.py --keep-trained     # after a shipped model is retrained: score its rows again, keep
                                             # every other run (and its commit) from the last matrix.json

How it works: code/realfake/studies/matrix.py (the functions this command calls).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


from realfake import cli
from realfake.project import (
    REPO_ROOT,
    config_path,
    pick_device,
)
from realfake.studies.matrix import run_matrix


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--out", help="the results file (default notes/results/matrix.json; data/sample/results/ "
                                      "with --sample)")
    parser.add_argument("--keep-trained", action="store_true",
                        help="after strong_model, pretrained_model or agiri_model is retrained: score its rows (and "
                             "CIFAKE's test split) again, keep every other run from the last results file")
    args = cli.parse(parser, argv)
    device = pick_device(args.device)
    out = Path(args.out) if args.out else (config_path("sample_dir") / "results" if args.sample else
                                           REPO_ROOT / "notes" / "results") / "matrix.json"
    run_matrix(out, args.sample, device, args.keep_trained)


if __name__ == "__main__":
    cli.run(main)
