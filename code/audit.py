"""Audit a real-vs-fake dataset for shortcuts: what tells its classes apart besides what the images show.

    python code/audit.py data/CIFAKE --json audit.json --markdown audit.md
    python code/audit.py my_dataset --fail-on-shortcut         # exit code 3 when a shortcut is flagged (for CI)

How it works: code/realfake/evaluation/audit.py (the functions this command calls).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


from realfake import cli
from realfake.evaluation.audit import FLAG_AUROC, audit, markdown, summary_lines


def main(argv=None):
    parser = cli.parser(__doc__, sample=False)
    parser.add_argument("dataset", help="the dataset's folder")
    parser.add_argument("--real", metavar="DIR", help="real images from elsewhere, for a dataset of fakes only")
    parser.add_argument("--threshold", type=float, default=FLAG_AUROC, help="flag metadata AUROC at or above this")
    parser.add_argument("--json", metavar="PATH", help="write the whole audit as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="write the audit as Markdown")
    parser.add_argument("--fail-on-shortcut", action="store_true", help="exit with code 3 when anything is flagged")
    args = cli.parse(parser, argv)
    report = audit(args.dataset, args.threshold, real=args.real)
    print("\n".join(summary_lines(report)))
    if args.json:
        cli.write_json(args.json, report)
    if args.markdown:
        Path(args.markdown).write_text(markdown(report))
        print(f"wrote {args.markdown}")
    return 3 if args.fail_on_shortcut and report["flags"] else 0


if __name__ == "__main__":
    cli.run(main)
