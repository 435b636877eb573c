"""A detector that never sees a fake: a model of real images only, and a score of how likely an image is for its
complexity (the idea of ZED, Cozzolino et al. 2024, with the input-complexity correction of Serra et al. 2020).

    python code/zeroshot.py                          # fit, then AUROC on CIFAKE's test set and every development
                                                     # generator, 3 seeds -> notes/results/variants.json
    python code/zeroshot.py my_folder/ --csv s.csv   # P(real) for every image below a folder (seed 0's detector)
    python code/zeroshot.py --sample --seeds 1       # on the generated sample data (a smoke test)

How it works: code/realfake/studies/zeroshot.py (the functions this command calls).
"""
import sys
from pathlib import Path

from realfake import cli
from realfake.project import REPO_ROOT, config_path
from realfake.studies.zeroshot import MODELS, SCORES, detector_for, run_zero_shot, score_folders
from realfake.training.pools import benchmark_splits


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("paths", nargs="*", help="image files or folders to score (none: run the benchmark)")
    parser.add_argument("--score", choices=SCORES, help="the score to use (default: both for the benchmark, "
                                                        "one-sided for folders)")
    parser.add_argument("--model", choices=list(MODELS), help="the model of real images (default: both for the "
                                                              "benchmark, patch for folders)")
    parser.add_argument("--seeds", type=cli.positive_int, default=3,
                        help="patch mixtures fitted for the benchmark (the own flow is one trained model: 1)")
    parser.add_argument("--csv", metavar="FILE", help="write the folder scores here")
    parser.add_argument("--out", help="benchmark JSON (default notes/results/variants.json, or the sample's)")
    args = cli.parse(parser, argv)
    train, val = benchmark_splits(args.sample)
    if args.paths:
        detector = detector_for(train, val, 0, args.score or "one-sided", model=args.model or "patch")
        table, failed = score_folders(args.paths, detector)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(f"\n{len(table)} images scored at threshold {detector.threshold:.3f}: "
              f"{int((table['label'] == 'Real').sum())} called real")
        for source, reason in failed:
            print(f"skipped {source}: {reason}", file=sys.stderr)
        if args.csv:
            table.to_csv(args.csv, index=False)
        return 1 if failed else 0

    out = Path(args.out) if args.out else (config_path("sample_dir") / "results" if args.sample
                                           else REPO_ROOT / "notes" / "results") / "variants.json"
    return run_zero_shot(out, train, val, [args.model] if args.model else list(MODELS),
                         [args.score] if args.score else SCORES, args.seeds, args.sample)


if __name__ == "__main__":
    cli.run(main)
