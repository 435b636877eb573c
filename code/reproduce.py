"""Reproduce the whole study with one command: models, CIFAKE test, robustness, CIFAR-100 and AGIRI transfer.

    python code/reproduce.py                 # real data in data/ -> notes/results/report.md + figures
    python code/reproduce.py --sample        # generated sample data -> data/sample/results/ (stamped as such)

The four shipped models (base, attention, mini, strong) are loaded from models/ (or, with --sample,
trained on the sample data into data/sample/models/); --retrain trains them again with train.py's
recipes. A dataset that is not in data/ is skipped with one line. Thresholds: 0.5 and each model's
validation-chosen threshold. The report also tables robustness to JPEG, resizing, blur, flips and noise.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import matplotlib

matplotlib.use("Agg")
import pandas as pd

import figures
from classes import load_agiri, load_cifake, load_cifar100
from evaluate import (accounting_table, accuracy_by_group, cifar100_transfer, evaluate_cifake, score_at_threshold,
                      score_dataset, summary_row)
from make_sample_data import STAND_IN_NOTE
from robustness import perturbation_table, wide_table
from project import REPO_ROOT, ProjectError, config_path, dataset_dir, git_commit, pick_device
from train import MODEL_RECIPES, train_or_load

# The original study's figures (../shared/reference.md), at threshold 0.5.
ORIGINAL_STUDY = pd.DataFrame({
    "CIFAKE test accuracy": {"base_model": 0.9170, "attn_model": 0.9206, "mini_model": None},
    "CIFAR-100 share called real": {"base_model": 0.9291, "attn_model": 0.9131, "mini_model": 0.9037},
    "AGIRI accuracy": {"base_model": 0.5480, "attn_model": 0.5329, "mini_model": 0.6100},
})
PAPER_ACCURACY = 0.9298                       # Bird & Lotfi 2024, best of 36 CNNs


class Report:
    """Markdown sections and PNG figures written into one folder."""

    def __init__(self, out, stamp):
        self.out, self.lines = Path(out), [stamp, ""] if stamp else []
        self.out.mkdir(parents=True, exist_ok=True)

    def text(self, *lines):
        self.lines += [*lines, ""]

    def table(self, frame, floatfmt=".4f"):
        self.text(frame.to_markdown(floatfmt=floatfmt))

    def figure(self, fig, name, caption):
        fig.savefig(self.out / name, dpi=110, bbox_inches="tight")
        matplotlib.pyplot.close(fig)
        self.text(f"![{caption}]({name})")

    def write(self):
        path = self.out / "report.md"
        path.write_text("\n".join(self.lines))
        return path


def cifake_section(report, models, sidecars, root, device):
    test, train = load_cifake(root, "test"), load_cifake(root, "train", verbose=False)
    labels, rows, scores, sweeps = test.labels.numpy(), {}, {}, {}
    for name, model in models.items():
        result, sweep, scores[name] = evaluate_cifake(model, test, 0.5, device, train)
        removed = result["deduplicated"]["removed"]
        at_val = score_at_threshold(labels, scores[name], sidecars[name]["threshold"])
        rows[name] = {**summary_row(result), "val threshold": sidecars[name]["threshold"],
                      "accuracy at val threshold": at_val["accuracy"]}
        sweeps[name] = sweep
    table = pd.DataFrame(rows).T.astype({"n": int})
    report.text(f"## CIFAKE test ({len(test)} images)", f"Threshold 0.5 unless stated; `accuracy_dedup` leaves out "
                f"the {removed} test files that are byte-identical to training files.")
    report.table(table)
    for name, sweep in sweeps.items():
        report.figure(figures.sweep_curves(sweep, f"{name} on {test.name}"), f"sweep_{name}.png", f"{name} sweep")
    report.figure(figures.roc_curves(labels, scores, test.name), "roc_cifake.png", "ROC curves on CIFAKE test")
    histories = {n: s["history"] for n, s in sidecars.items() if len(s.get("history", [])) > 1}
    if histories:
        report.figure(figures.training_curves(histories), "training_curves.png", "training curves")
    by_class = pd.DataFrame({n: accuracy_by_group(labels, s, test.classes, test.class_names)["accuracy"]
                             for n, s in scores.items()})
    report.text("### Accuracy per CIFAR-10 content class (both labels)")
    report.table(by_class.sort_values(next(iter(scores))))
    return table


def cifar100_section(report, models, root, device):
    data = load_cifar100(root, "test")
    scores = {name: score_dataset(model, data, device) for name, model in models.items()}
    transfer = cifar100_transfer(scores, data)
    report.text(f"## CIFAR-100 test ({len(data)} images, all real): share called real at 0.5")
    report.table(transfer["overall"].to_frame())
    report.text("### Per coarse class (worst first)")
    report.table(transfer["coarse"])
    report.figure(figures.grouped_bars(transfer["coarse"], "share called real", "CIFAR-100 coarse classes"),
                  "cifar100_coarse.png", "share called real per coarse class")
    report.text("### The five worst and best fine classes", transfer["fine"].head(5).to_markdown(floatfmt=".3f"),
                "", transfer["fine"].tail(5).to_markdown(floatfmt=".3f"))
    return transfer["overall"]


def agiri_section(report, models, sidecars, root, device):
    datasets = {p: load_agiri(root, preprocess=p) for p in ("resize", "center_crop", "multi_crop")}
    report.text("## AGIRI test: every file accounted for")
    report.table(accounting_table(datasets), floatfmt="d")
    rows = {}
    for prep, data in datasets.items():
        for name, model in models.items():
            scores = score_dataset(model, data, device)
            labels = data.labels.numpy()
            at_half = score_at_threshold(labels, scores, 0.5)
            at_val = score_at_threshold(labels, scores, sidecars[name]["threshold"])
            rows[(name, prep)] = {**summary_row(at_half), "accuracy at val threshold": at_val["accuracy"]}
    table = pd.DataFrame(rows).T.astype({"n": int}).rename_axis(["model", "preprocessing"])
    report.text(f"## AGIRI test ({len(datasets['resize'])} images): three preprocessings")
    report.table(table)
    return table.xs("resize", level=1)["accuracy"]


def robustness_section(report, models, root, device):
    test = load_cifake(root, "test", verbose=False)
    table = perturbation_table(models, test, device)
    report.text(f"## Robustness on CIFAKE test ({len(test)} images, threshold 0.5)",
                "`python code/test.py --perturb` gives the same table.")
    wide = wide_table(table)
    wide.columns = [f"{metric} {model}" for metric, model in wide.columns]
    report.table(wide)
    report.figure(figures.robustness_bars(table), "robustness.png", "accuracy and AUROC under perturbations")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", action="store_true", help="run on the generated sample data (a stand-in)")
    parser.add_argument("--out", help="output folder (default notes/results/, or data/sample/results/ with --sample)")
    parser.add_argument("--retrain", action="store_true", help="train the four models again")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    started, device = time.perf_counter(), pick_device(args.device)
    sample_dir = config_path("sample_dir")
    out = Path(args.out) if args.out else (sample_dir / "results" if args.sample else REPO_ROOT / "notes" / "results")
    stamp = f"> **SAMPLE DATA**: {STAND_IN_NOTE}. No figure here says anything about CIFAKE." if args.sample else ""
    report = Report(out, stamp)
    report.text("# Reproduction report", f"`python code/reproduce.py{' --sample' if args.sample else ''}` on {device}, "
                f"commit {git_commit()}.")
    loaded = {name: train_or_load(name, args.sample, args.retrain, device) for name in MODEL_RECIPES}
    models = {name: model for name, (model, _) in loaded.items()}
    sidecars = {name: sidecar for name, (_, sidecar) in loaded.items()}
    cifake, cifar100, agiri = (dataset_dir(key, args.sample) for key in ("CIFAKE_dir", "CIFAR100_dir", "AGIRI_dir"))
    sections = {
        "CIFAKE test accuracy": lambda: cifake_section(report, models, sidecars, cifake, device)["accuracy"],
        "robustness": lambda: robustness_section(report, models, cifake, device),
        "CIFAR-100 share called real": lambda: cifar100_section(report, models, cifar100, device),
        "AGIRI accuracy": lambda: agiri_section(report, models, sidecars, agiri, device),
    }
    ours = {}
    for name, run in sections.items():
        try:
            ours[name] = run()
        except ProjectError as e:
            print(f"skipped {name}: {e}")
            report.text(f"## {name}: skipped", f"{e}")
    comparison = pd.DataFrame({f"{metric} ({who})": table[metric] for metric in ORIGINAL_STUDY
                               for who, table in (("ours", pd.DataFrame(ours)), ("original", ORIGINAL_STUDY))
                               if metric in table}, index=list(MODEL_RECIPES))
    report.text("## Beside the original study (threshold 0.5)", f"The CIFAKE paper's best CNN: {PAPER_ACCURACY:.2%}.")
    report.table(comparison)
    report.text(f"Total time {time.perf_counter() - started:.0f} s.")
    print(f"wrote {report.write()}")


if __name__ == "__main__":
    try:
        main()
    except ProjectError as e:
        sys.exit(f"error: {e}")
