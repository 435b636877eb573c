"""Which training choices make a small detector catch generators it never saw? Two studies, one file of runs.

    python code/variants.py                          # every CIFAKE-only variant, 3 seeds -> notes/results/variants.json
    python code/variants.py --only fast fast_npr     # some variants (runs already in the file are kept, not redone)
    python code/variants.py --protocol logo          # the benchmark: leave one development generator out
    python code/variants.py --protocol lofo --only "fast balanced"   # ... leave one family out; floor; oracle
    python code/variants.py --protocol own           # CIFAKE and generators the project trains (owngen.py) only
    python code/variants.py --sample --seeds 1       # on the generated sample data (a smoke test)

How it works: code/realfake/studies/variants.py (the functions this command calls).
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
from realfake.studies.variants import (
    LEAVE_OUT,
    PROTOCOLS,
    VARIANTS,
    run_study,
)


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--protocol", choices=PROTOCOLS, default="changes",
                        help="changes: the CIFAKE-only variants (default); floor, logo, lofo, oracle: the benchmark")
    parser.add_argument("--only", nargs="+", metavar="VARIANT", help=f"variants to run (default all: changes "
                        f"{', '.join(VARIANTS)}; logo and lofo {', '.join(LEAVE_OUT)})")
    parser.add_argument("--seeds", type=cli.positive_int, default=3, help="training seeds per variant (default 3)")
    parser.add_argument("--redo", action="store_true", help="run the chosen variants again (replacing their runs)")
    parser.add_argument("--out", help="output JSON (default notes/results/variants.json, or the sample results folder)")
    args = cli.parse(parser, argv)
    out = Path(args.out) if args.out else (config_path("sample_dir") / "results" if args.sample
                                           else REPO_ROOT / "notes" / "results") / "variants.json"
    return run_study(args.protocol, out, args.only, args.seeds, args.redo, args.sample, pick_device(args.device))


if __name__ == "__main__":
    cli.run(main)
