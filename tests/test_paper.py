"""paper/build.py: the paper builds from any results folder, every number comes from it, and the committed PDF
was built from the committed results."""
import json
import re
import shutil
import subprocess
import sys

import pytest

from realfake.project import REPO_ROOT

pytest.importorskip("typst", reason="typst is not installed (pip install -r requirements.txt)")
sys.path.insert(0, str(REPO_ROOT / "paper"))
import build  # noqa: E402

MIN_PAGES, MAX_PAGES = 6, 18          # a page count outside these means the layout ran away
# Decimals and percentages the source may type: conventions, not results (the 0.5 threshold and chance level, the
# 0.25 share of a map with no preference, an example probability, Stable Diffusion's version, 95% intervals).
CONVENTIONS = {"0.5", "0.25", "0.8", "1.4", "95%"}


def build_cli(results, out):
    return subprocess.run([sys.executable, "paper/build.py", "--results", str(results), "--out", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture
def results_copy(sample_results, tmp_path):
    return shutil.copytree(sample_results, tmp_path / "results")


def test_builds_from_sample_results_with_every_page(sample_results, tmp_path):
    result = build_cli(sample_results, tmp_path / "paper.pdf")
    assert result.returncode == 0, result.stderr
    pdf = (tmp_path / "paper.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and build.page_count(pdf) >= MIN_PAGES
    assert f"results-sha256:{build.results_digest(sample_results)}".encode() in pdf
    assert f"{build.page_count(pdf)} pages" in result.stdout


def test_a_missing_result_key_fails_in_one_line_naming_it(results_copy, tmp_path):
    results = json.loads((results_copy / "results.json").read_text())
    del results["explanations"]["centre share"]["strong_model gradcam"]
    (results_copy / "results.json").write_text(json.dumps(results))
    result = build_cli(results_copy, tmp_path / "paper.pdf")
    assert result.returncode == 1 and not (tmp_path / "paper.pdf").exists()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "results/explanations/centre share/strong_model gradcam" in lines[0], result.stderr


def test_a_missing_figure_fails_in_one_line_naming_it(results_copy, tmp_path):
    (results_copy / "robustness.png").unlink()
    result = build_cli(results_copy, tmp_path / "paper.pdf")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "figure 'robustness.png'" in lines[0], result.stderr


def test_a_missing_result_file_names_the_command_that_makes_it(results_copy, tmp_path):
    (results_copy / "seeds.json").unlink()
    with pytest.raises(build.ProjectError, match=r"seeds\.json is missing: run `python code/seeds\.py`"):
        build.build(results_copy, tmp_path / "paper.pdf")


def test_the_digest_covers_every_result_file(results_copy):
    before = build.results_digest(results_copy)
    seeds = json.loads((results_copy / "seeds.json").read_text())
    seeds["seeds"] += 1
    (results_copy / "seeds.json").write_text(json.dumps(seeds))
    changed = build.results_digest(results_copy)
    (results_copy / "report.md").write_text("not read by the paper")
    assert before != changed == build.results_digest(results_copy)


def test_committed_pdf_was_built_from_the_committed_results():
    record = json.loads(build.RECORD.read_text())
    digest = build.results_digest(build.RESULTS)
    assert record["sha256"] == digest, "notes/results changed since the paper was built: run python paper/build.py"
    pdf = build.PDF.read_bytes()
    assert f"results-sha256:{digest}".encode() in pdf
    assert build.page_count(pdf) == record["pages"] and MIN_PAGES <= record["pages"] <= MAX_PAGES


def test_no_result_is_typed_into_the_source():
    """Every decimal or percentage in the text of paper.typ is a convention; results come through `get`."""
    text = build.SOURCE.read_text()
    prose = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("//", "#set", "#show")))
    prose = re.sub(r"(width|gutter|inset|above|below|size|margin|v)\s*[:(]\s*[\d.]+\s*(%|em|pt|cm)", "", prose)
    typed = set(re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])|(?<![\w.])\d+(?:\.\d+)?%", prose))
    assert typed <= CONVENTIONS, f"typed into paper.typ: {sorted(typed - CONVENTIONS)}"


def test_the_paper_rounds_every_number_as_the_readme_does(tmp_path):
    """One rounding rule: paper.typ's `num` and `pct` print what Python's f"{x:.4f}" and f"{x:.1%}" print (the
    README's tables), ties and binary representation included."""
    import typst
    source = build.SOURCE.read_text()
    helpers = source[source.index("// Number formats"):source.index("// Shorthands for the result files")]
    (tmp_path / "rounding.typ").write_text(helpers + """
#let text-of(c) = if type(c) == str { c } else if c.has("text") { c.text } else if c.has("children") {
  c.children.map(text-of).join() } else { "" }
#metadata(json(bytes(sys.inputs.values)).map(x => (text-of(num(x, d: 4)), text-of(num(x, d: 2)),
  text-of(pct(x, d: 1)), text-of(pct(x, d: 2))))) <out>
""")
    rng = __import__("numpy").random.default_rng(0)
    values = [0.0875, 0.91755, 0.125, 0.375, 0.00005, 0.9797, 0.98065, 0.96385, *rng.random(300).round(5).tolist()]
    printed = json.loads(typst.query(str(tmp_path / "rounding.typ"), "<out>", field="value",
                                     sys_inputs={"values": json.dumps(build.exact(values))}))[0]
    expected = [[f"{x:.4f}", f"{x:.2f}", f"{x:.1%}", f"{x:.2%}"] for x in values]
    assert printed == expected
