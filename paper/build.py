"""Build the paper: paper/paper.typ and the result files -> paper/paper.pdf, with the `typst` package from PyPI
(no TeX installation needed).

    python paper/build.py                                            # notes/results/ -> paper/paper.pdf
    python paper/build.py --results data/sample/results --out data/sample/paper.pdf   # any results folder

Every number, table and figure in the paper comes from a results folder: results.json (`python code/reproduce.py`),
seeds.json (`python code/seeds.py`) and the figures reproduce.py draws there. The source reads them only through
its `get` and `fig` functions, which stop the build with one line naming any key or figure the folder lacks. The
SHA-256 of the folder's JSON and PNG files goes into the PDF (its keywords and its last page) and, for the
committed paper, into paper/build.json, so that a test can check the PDF was built from the committed results.
"""
import argparse
import hashlib
import json
import os
import re
import sys
from decimal import Decimal
from pathlib import Path

PAPER_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(PAPER_DIR.parent / "code"))

import typst  # noqa: E402

from realfake import cli
from realfake.project import ProjectError, REPO_ROOT, absolute, shown

SOURCE = PAPER_DIR / "paper.typ"
RESULTS = REPO_ROOT / "notes" / "results"
PDF = PAPER_DIR / "paper.pdf"
RECORD = PAPER_DIR / "build.json"
RESULT_FILES = {"results": "python code/reproduce.py", "seeds": "python code/seeds.py"}   # <name>.json: made by


def result_files(folder):
    """The folder's JSON and PNG files, by name: what a build of the paper may read."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix in (".json", ".png"))


def results_digest(folder):
    """SHA-256 over the names and bytes of the folder's result files."""
    digest = hashlib.sha256()
    for path in result_files(folder):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def read_results(folder):
    """{name: parsed JSON} for each of RESULT_FILES, or a ProjectError naming the file and the command that makes it."""
    data = {}
    for name, command in RESULT_FILES.items():
        path = folder / f"{name}.json"
        try:
            data[name] = json.loads(path.read_text())
        except FileNotFoundError:
            raise ProjectError(f"{shown(path)} is missing: run `{command}` first") from None
        except json.JSONDecodeError as e:
            raise ProjectError(f"{shown(path)} is not valid JSON ({e}): run `{command}` again") from None
    return data


def exact(value):
    """`value` with every float x as "X|Y": X the exact binary value of x and Y that of the float x * 100, each to 20
    significant digits, which the source reads as Typst decimals (`value`, `percent`). The paper then rounds as the
    README's Python formatting does, the one rounding rule of both: f"{x:.4f}" rounds x's exact value half to even,
    and f"{x:.1%}" rounds the float x * 100 (0.0875 is stored just below it, but 0.0875 * 100 is exactly 8.75, so
    8.8%), where Typst's own floats would round the product differently."""
    if isinstance(value, dict):
        return {key: exact(v) for key, v in value.items()}
    if isinstance(value, list):
        return [exact(v) for v in value]
    if isinstance(value, float):
        return f"{decimal_digits(value)}|{decimal_digits(value * 100)}"
    return value


def decimal_digits(value):
    """A float's exact binary value, rounded to 20 significant digits, as a decimal string."""
    digits = Decimal(value)
    return format(round(digits, 19 - digits.adjusted()) if digits else digits, "f")


def page_count(pdf):
    """The number of pages of a PDF as typst writes it (one `/Type /Page` dictionary per page)."""
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))


def build(results=RESULTS, out=PDF, record=None):
    """Compile the paper from the results folder `results` into `out`; returns (pages, digest). With `record`, also
    write what the build used there as JSON."""
    results, out = absolute(results), absolute(out)
    data, digest = read_results(results), results_digest(results)
    root = Path(os.path.commonpath([PAPER_DIR, results]))            # typst reads files only below its root
    inputs = {"results": json.dumps(exact(data)), "digest": digest,
              "figures": json.dumps([p.name for p in result_files(results) if p.suffix == ".png"]),
              "figure_dir": "/" + results.relative_to(root).as_posix()}
    try:
        pdf = typst.compile(str(SOURCE), root=str(root), sys_inputs=inputs)
    except typst.TypstError as e:
        raise ProjectError(one_line(str(e), results)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(pdf)
    pages = page_count(pdf)
    if record:
        cli.write_json(record, {"results": shown(results), "sha256": digest, "pages": pages, "typst": typst.__version__,
                                "files": [p.name for p in result_files(results)]})
    return pages, digest


def one_line(message, results):
    """A typst error as one line: a missing key or figure named with the command that makes it."""
    missing = re.search(r"missing (result key|figure): ([^\n\"]+)", message)
    if missing:
        kind, key = missing.groups()
        return (f"{SOURCE.name} needs the {kind} '{key.strip()}', which {shown(results)} lacks: run "
                f"`python code/reproduce.py` and `python code/seeds.py` (with --sample for the sample data)")
    return f"typst could not build {SOURCE.name}: {' '.join(message.split())[:400]}"


def main(argv=None):
    parser = cli.OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=str(RESULTS), help="results folder (default notes/results/)")
    parser.add_argument("--out", default=str(PDF), help="the PDF to write (default paper/paper.pdf)")
    args = cli.parse(parser, argv)
    committed = absolute(args.results) == RESULTS and absolute(args.out) == PDF
    pages, digest = build(args.results, args.out, RECORD if committed else None)
    print(f"wrote {shown(args.out)}: {pages} pages from {shown(args.results)} (sha256 {digest[:16]})")


if __name__ == "__main__":
    cli.run(main)
