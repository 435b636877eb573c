"""What every command-line script shares: the common flags, declared once, and one-line errors.

    parser = cli.parser(__doc__, data="CIFAKE folder")     # adds --device, --sample and (here) --data
    args = cli.parse(parser, argv)                          # with --sample, makes the sample data if missing
    cli.run(main)                                           # a ProjectError ends the script with one line
"""
import argparse
import json
import sys
from pathlib import Path

import matplotlib

from realfake.project import STAND_IN_NOTE, ProjectError, config_path, shown


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (argparse's own print the whole usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")


def parser(doc, data=None, sample=True):
    """An ArgumentParser with the shared flags: --device, --sample (unless sample=False) and, when `data` (its help
    text) is given, --data."""
    result = OneLineParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("--device", default="auto", help="auto (CUDA, then Apple MPS, then the CPU), cpu, cuda, mps")
    if sample:
        result.add_argument("--sample", action="store_true",
                            help="use the generated sample data (a stand-in for testing; made on first use)")
    if data:
        result.add_argument("--data", metavar="DIR", help=f"{data} (default: config.json's)")
    return result


def parse(parser, argv=None):
    """Parse the command line; with --sample, generate the sample data if it is not there yet."""
    args = parser.parse_args(argv)
    matplotlib.use("Agg")                             # scripts write figures to files, never show them
    if getattr(args, "sample", False):
        ensure_sample_data()
        print(f"NOTE: {STAND_IN_NOTE}; figures are for testing only")
    return args


def ensure_sample_data():
    """The sample data folder, generated (python code/make_sample_data.py) when it is missing or lacks a dataset."""
    root = config_path("sample_dir")
    datasets = [config_path(key).name for key in ("CIFAKE_dir", "ddpm32_dir", "generators32_dir")]
    if not (root / "README.md").is_file() or not all((root / name).is_dir() for name in datasets):
        from realfake.data.sample import make_sample_data
        print("generating the sample data (python code/make_sample_data.py) ...")
        make_sample_data(root)
    return root


def positive_int(text):
    """An argparse type: an integer of at least 1 (epochs, batch sizes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def write_json(path, data):
    """`data` as indented JSON (numpy numbers as floats), creating the folder."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, default=float) + "\n")
    print(f"wrote {shown(path)}")


def save_figure(fig, path):
    """A matplotlib figure as an image file, creating the folder."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {shown(path)}")


def run(main):
    """Call main(); a ProjectError (a problem the user can fix) ends the script with one line, exit code 1.
    main's return value, if an int, is the exit code."""
    try:
        code = main()
    except ProjectError as e:
        sys.exit(f"error: {e}")
    sys.exit(code if isinstance(code, int) else 0)
