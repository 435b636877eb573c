"""Every notebook runs top to bottom on the generated sample data, and produces what it should."""
import json
import re

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -r requirements.txt)")
NotebookClient = pytest.importorskip("nbclient", reason="nbclient is not installed").NotebookClient

from realfake.project import REPO_ROOT
from realfake.rules import FULL_SIZE_SHIP_AT_LEAST
from realfake.studies import matrix

CODE = REPO_ROOT / "code"
CHECKS = {  # notebook -> (extra parameters, a final cell printing what the test checks, as JSON)
    "CIFAKE_classification": ("", "print(json.dumps({'models': list(summary.index), "
                                  "'accuracy': summary['accuracy'].tolist(), 'n': int(summary['n'].iloc[0]),"
                                  "'classes': len(accuracy_by_group(labels, scores[MODELS[0]], test.classes, test.class_names))}))"),
    "func_difficulty": ("LOG_EVERY = 10", "print(json.dumps({'steps': len(history['steps']), 'n_train': len(train)}))"),
    "transfer_cifar100": ("", "print(json.dumps({'coarse': transfer['coarse'].shape, 'fine': transfer['fine'].shape,"
                              "'overall': transfer['overall'].tolist()}))"),
    "transfer_mixed": ("", "print(json.dumps({'accounting': accounting.to_dict(orient='index'), 'rows': len(table),"
                           "'jpeg_rows': len(jpeg_table), 'ddpm_fakes': int((ddpm_labels == 0).sum()),"
                           "'audited': audited['files'], 'cv': len(cv), 'beside': list(beside.columns),"
                           "'verdict': full['ships'], 'held_jpeg_auroc': held['JPEG fakes']['auroc'], 'matrix': list(rows), 'cifake_test': list(cifake_test.index),"
                           "'photo_rows': list(photo_table(photo_results).index), 'photo_options': len(options),"
                           "'photo_verdict': photo['decision']['gives verdicts']}))"),
    "transfer_generators": ("", "print(json.dumps({'rows': list(table.index), 'shares': list(shares.columns),"
                                "'audited': list(audit.index), 'changes': list(change.index),"
                                "'benchmark': list(bench_table.index), 'own': sorted(made)}))"),
}


def run_notebook(name, more=""):
    nb = nbformat.read(CODE / f"{name}.ipynb", as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "each notebook has one cell tagged 'parameters'"
    extra, check = CHECKS[name]
    params[0].source += f"\n# injected by the test\nSAMPLE = True\n{extra}\n{more}\n"
    nb.cells.append(nbformat.v4.new_code_cell(f"import json\n{check}"))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(CODE)}}).execute()
    return json.loads(nb.cells[-1].outputs[-1]["text"].strip().splitlines()[-1]), nb


def test_notebooks_carry_no_sample_outputs():
    """Committed notebooks show real data only, and were run top to bottom."""
    for name in CHECKS:
        nb = nbformat.read(CODE / f"{name}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        text = json.dumps([c.get("outputs", []) for c in code])
        assert "SAMPLE DATA" not in text and "stand-in" not in text
        assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), name


def test_cifake_classification_notebook(sample_root):
    result, _ = run_notebook("CIFAKE_classification")
    assert result["models"] == ["base_model", "attn_model"] and result["n"] == 400
    assert all(0 <= a <= 1 for a in result["accuracy"]) and result["classes"] == 10


def test_func_difficulty_notebook(sample_root):
    result, _ = run_notebook("func_difficulty")
    assert result["steps"] == (result["n_train"] // 32) // 10


def test_transfer_cifar100_notebook(sample_root):
    result, _ = run_notebook("transfer_cifar100")
    assert result["coarse"] == [20, 5] and result["fine"] == [100, 5]
    assert all(0 <= share <= 1 for share in result["overall"])


def test_transfer_mixed_notebook(sample_root):
    result, _ = run_notebook("transfer_mixed")
    files = [p for p in (sample_root / "ai-generated-images-vs-real-images" / "test").rglob("*") if p.is_file()]
    for row in result["accounting"].values():
        assert row["found"] == len(files) == row["loaded"] + row["skipped"] and row["skipped"] == 4
    assert result["rows"] == result["jpeg_rows"] == 15 and result["ddpm_fakes"] == 20 and result["audited"] == len(files)
    from realfake.training.pretrained import choices
    assert result["cv"] == len(choices())
    assert result["verdict"] is (result["held_jpeg_auroc"] >= FULL_SIZE_SHIP_AT_LEAST)     # the rule, from the figure
    assert result["beside"] == ["AUROC, all fakes", "AUROC, JPEG fakes", "accuracy, JPEG fakes", "faces AUROC",
                                "DDPM-32 AUROC"]
    assert result["matrix"] == [f"{b}, trained on {t}" for b in matrix.BACKBONES for t in matrix.TRAINING_SETS]
    assert result["cifake_test"] == ["strong_model", "pretrained_model"]
    from realfake.training.photos import options
    assert result["photo_options"] == len(options()) and isinstance(result["photo_verdict"], bool)
    assert result["photo_rows"] == ["AGIRI reals", "AGIRI reals, held-out fold", "camera", "scans",
                                    "faces: CelebA-HQ reals", "AGIRI fakes, held-out fold (share caught = fake)"]


def test_transfer_generators_notebook(sample_results):
    result, _ = run_notebook("transfer_generators", f"RESULTS_DIR = {str(sample_results)!r}")
    assert {"fast", "fast_npr", "fast_oracle_gan", "patch/fast", "strong/general", "strong_model"} <= set(
        result["rows"])
    assert result["shares"] == [f"{g}: share of the oracle's margin" for g in ("ddpm-retrained", "gan-small")]
    assert result["audited"] == [f"{g} vs CIFAKE test/REAL" for g in ("DDPM-32", "ddpm-retrained", "gan-small",
                                                                       "own gan", "own vae", "own flow")]
    assert {"fast", "fast_npr", "fast_spectrum"} <= set(result["changes"])
    assert "fast_oracle_gan" not in result["changes"]
    assert {"CIFAKE only (floor)", "logo: fast balanced", "strong_model (shipped)", "own: CIFAKE + own gan, vae, flow",
            "zeroshot: patch mixture, one-sided", "zeroshot: own flow, two-sided"} <= set(result["benchmark"])
    assert result["own"] == ["flow", "gan", "vae"]               # the sample benchmark's own generators, shown


# Figures a conclusion may state that are settings or levels, not results: {notebook: {figure: why}}
CONCLUSION_SETTINGS = {"func_difficulty": {"0.001": "the original recipe's learning rate", "50%": "chance",
                                           "0.693": "ln 2, the loss at chance"},
                       "transfer_mixed": {"1.4": "Stable Diffusion's version"}}
FIGURE = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?%|\d[\d,]*\.\d+)(?![\w.%])")


def figure_interval(text):
    """The interval of values a printed figure ('0.9175', '91.75%', '1,234.5') stands for, as a fraction for a
    percentage."""
    number = text.rstrip("%").replace(",", "")
    decimals = len(number.partition(".")[2]) + (2 if text.endswith("%") else 0)
    value = float(number) / (100 if text.endswith("%") else 1)
    return value - 0.5 * 10 ** -decimals, value + 0.5 * 10 ** -decimals


def printed_text(nb):
    """Every output a notebook's code cells printed or displayed, as text."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            parts.append(output.get("text", ""))
            parts += [value for kind, value in output.get("data", {}).items() if kind in ("text/plain", "text/html")]
    return "\n".join(parts)


@pytest.mark.parametrize("name", CHECKS)
def test_every_figure_a_conclusion_states_was_printed_by_its_notebook(name):
    """A conclusion's decimals and percentages are read off the notebook's own outputs: each must agree (within the
    rounding of both) with a figure printed above it, so a conclusion cannot keep a figure the run no longer gives."""
    nb = nbformat.read(CODE / f"{name}.ipynb", as_version=4)
    conclusions = [c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Conclusion")]
    printed = [figure_interval(f) for f in FIGURE.findall(printed_text(nb))]
    printed_signed = printed + [(-high, -low) for low, high in printed]           # a difference printed negative
    settings = CONCLUSION_SETTINGS.get(name, {})
    unprinted = [figure for text in conclusions for figure in FIGURE.findall(text) if figure not in settings
                 and not any(low <= high_p and low_p <= high for low, high in [figure_interval(figure)]
                             for low_p, high_p in printed_signed)]
    assert conclusions and not unprinted, f"{name}: stated in the conclusion but printed nowhere: {unprinted}"
