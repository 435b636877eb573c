"""How far does the training seed alone move the replication? The base and attention CNNs (the original recipe,
10 epochs) trained with seeds 0..N-1 on one validation split (seed 0's, the shipped models'), each scored on the
CIFAKE test set. The paper's replication section reads the result.

    python code/seeds.py                 # 3 seeds each on the real data -> notes/results/seeds.json (~15 min, 2 cores)
    python code/seeds.py --sample        # the sample data (3 epochs) -> data/sample/results/seeds.json

How it works: code/realfake/studies/seeds.py (the functions this command calls).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


from realfake import cli
from realfake.project import REPO_ROOT, cifake_root, config_path, pick_device
from realfake.studies.seeds import seed_runs


def main(argv=None):
    parser = cli.parser(__doc__, data="CIFAKE folder")
    parser.add_argument("--seeds", type=cli.positive_int, default=3, help="training seeds per model (default 3)")
    parser.add_argument("--out", help="output JSON (default notes/results/seeds.json, or the sample results folder)")
    args = cli.parse(parser, argv)
    default = (config_path("sample_dir") / "results" if args.sample else REPO_ROOT / "notes" / "results") / "seeds.json"
    result = seed_runs(cifake_root(args.data, args.sample), range(args.seeds), pick_device(args.device), args.sample)
    cli.write_json(args.out or default, result)


if __name__ == "__main__":
    cli.run(main)
