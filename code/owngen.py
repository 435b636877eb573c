"""Generators the project trains itself, on CIFAKE's real training images, on a CPU: fakes of three families that
need nothing from outside.

    python code/owngen.py                 # train all three (or fetch them from data/own_generators/), time them
    python code/owngen.py --only gan      # one of them
    python code/owngen.py --sample        # on the generated sample data, for a smoke test

How it works: code/realfake/training/own_generators.py (the functions this command calls).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import json

from realfake import cli
from realfake.models.generators import MODELS
from realfake.project import REPO_ROOT
from realfake.training.own_generators import OWN_DIR, own_generator
from realfake.training.pools import benchmark_reals


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--only", nargs="+", choices=list(MODELS), default=list(MODELS), help="generators to make")
    args = cli.parse(parser, argv)
    images = benchmark_reals(args.sample)               # the benchmark's reals: the folders its runs use
    for name in args.only:
        folder = own_generator(name, images)
        facts = json.loads((folder / "settings.json").read_text())
        print(f"{name}: {facts['samples']} samples in {folder.relative_to(REPO_ROOT)}; trained "
              f"{facts['settings']['steps']} steps on {facts['training images']} images in "
              f"{facts['training seconds']:.0f} s ({facts['seconds with sampling']:.0f} s with sampling, "
              f"{facts['parameters']:,} parameters)")
    print(f"audit each one: python code/audit.py {OWN_DIR.relative_to(REPO_ROOT)}/NAME-KEY "
          f"--real data/CIFAKE/test/REAL")


if __name__ == "__main__":
    cli.run(main)
