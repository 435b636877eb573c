"""Generate small sample datasets in the exact on-disk formats of CIFAKE, CIFAR-100 and AGIRI.

    python code/make_sample_data.py    # -> data/sample/{CIFAKE, CIFAR100, ai-generated-images-vs-real-images, ...}

How it works: code/realfake/data/sample.py (the functions this command calls).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import argparse

from realfake.data.sample import make_sample_data
from realfake.project import STAND_IN_NOTE


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="output folder (default: config.json's sample_dir)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=1000, help="CIFAKE train images per class")
    parser.add_argument("--n-test", type=int, default=200, help="CIFAKE test images per class")
    args = parser.parse_args()
    root = make_sample_data(args.out, args.seed, args.n_train, args.n_test)
    print(f"wrote {root}: {STAND_IN_NOTE}")


if __name__ == "__main__":
    main()
