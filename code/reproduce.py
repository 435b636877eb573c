"""Reproduce the whole study with one command: models, CIFAKE test, robustness, CIFAR-100 and AGIRI transfer.

    python code/reproduce.py                 # real data in data/ -> notes/results/ (report, results.json, figures)
    python code/reproduce.py --sample        # generated sample data -> data/sample/results/ (stamped as such)

The shipped models (recipes.SHIPPED_MODELS) are loaded from models/ (or, with --sample, trained on the sample
data into data/sample/models/); --retrain trains them again. A section whose data is not in data/ is skipped with
one line and keeps the last run's figures, saying so in the report and in results.json's "sections" (the commit
that computed each); a section no run has computed is left out, and named. On real data the README's results
tables (between `<!-- results:NAME -->` markers) are rewritten from results.json, so no figure there is typed by
hand. Scores are kept in data/.scores/, keyed by the model file's
and the images' contents, so a second run only scores what changed.
"""
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd
import torch

from realfake import cli
from realfake.evaluation.scoring import DEV_GENERATORS
from realfake.metrics import BOOTSTRAP_RESAMPLES, ECE_BINS
from realfake.models.inference import ScoreStore
from realfake.project import (
    REPO_ROOT,
    STAND_IN_NOTE,
    ProjectError,
    config_path,
    dataset_dir,
    git_commit,
    machine_description,
    model_file,
    pick_device,
    shown,
)
from realfake.publishing import sections
from realfake.publishing.publish import model_card, readme_tables, update_readme
from realfake.publishing.reporting import Report, markdown
from realfake.training import own_generators
from realfake.training.loop import train_or_load, train_sample_pretrained
from realfake.training.pools import benchmark_reals
from realfake.training.recipes import SHIPPED_MODELS

SECTION_KEYS = {        # section: the results.json keys it writes (kept from the last run when --only skips it)
    "audits": ("audit",), "cifake": ("cifake_test", "cifake_train"), "validation": ("validation",), "cifar100": ("cifar100",), "agiri": ("agiri",),
    "agiri_subset": ("agiri_subset",), "faces": ("faces",), "ddpm32": ("ddpm32",), "robustness": ("robustness",),
    "explanations": ("explanations",),
    "generators": ("generators",), "benchmark": ("benchmark",), "fullsize": ("fullsize",), "photos": ("photos",),
    "matrix": ("matrix",)}


def previous_blocks(path):
    """{section: its Markdown, markers included} of a report.md written before."""
    text = path.read_text() if path.is_file() else ""
    return {m.group(1): m.group(0) for m in re.finditer(r"<!-- section:(\w+) -->\n.*?<!-- /section:\1 -->", text, re.S)}


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--out", help="output folder (default notes/results/, or data/sample/results/ with --sample)")
    parser.add_argument("--retrain", action="store_true", help="train the shipped models again")
    parser.add_argument("--only", nargs="+", choices=SECTION_KEYS, metavar="SECTION",
                        help=f"run these sections and keep the others from the last run's results.json and report.md "
                             f"({', '.join(SECTION_KEYS)})")
    args = cli.parse(parser, argv)

    started, device = time.perf_counter(), pick_device(args.device)
    commit = git_commit()                             # before this run rewrites any tracked result file
    sample_dir = config_path("sample_dir")
    out = Path(args.out) if args.out else (sample_dir / "results" if args.sample else REPO_ROOT / "notes" / "results")
    stamp = f"> **SAMPLE DATA**: {STAND_IN_NOTE}. No figure here says anything about CIFAKE." if args.sample else ""
    if args.only and not (out / "results.json").is_file():
        raise ProjectError(f"--only keeps the other sections from {shown(out / 'results.json')}, which is missing: "
                           f"run python code/reproduce.py once without --only")
    last = out / "results.json"                       # what a section left out or skipped keeps from the last run
    kept = json.loads(last.read_text()) if last.is_file() else {}
    blocks = previous_blocks(out / "report.md")
    kept_commit = lambda key: kept.get("sections", {}).get(key, kept.get("commit"))
    skipped = {}                                      # section: "kept from commit ..." or "no results"
    report = Report(out, stamp)
    report.text("# Reproduction report", f"`python code/reproduce.py{' --sample' if args.sample else ''}"
                f"{' --only ' + ' '.join(args.only) if args.only else ''}` on {device}, commit {commit}"
                f"{' (the other sections: commit ' + str(kept.get('commit')) + ')' if args.only else ''}.")
    timings = {}

    def timed(step, run):
        """Run one step, printing and keeping its wall time (the report's last table)."""
        begun = time.perf_counter()
        try:
            return run()
        finally:
            timings[step] = time.perf_counter() - begun
            print(f"[{step}: {timings[step]:.1f} s]")

    def section(key, run):
        """One section of the report between markers, or, when --only leaves it out, the last run's."""
        if args.only and key not in args.only:
            report.results.update({k: kept[k] for k in SECTION_KEYS[key] if k in kept})
            if key in blocks:
                report.text(blocks[key])
            return
        report.text(f"<!-- section:{key} -->")
        try:
            timed(key, run)
        except ProjectError as e:
            last_results = {k: kept[k] for k in SECTION_KEYS[key] if k in kept}
            skipped[key] = f"kept from commit {kept_commit(key)}" if last_results else "no results"
            print(f"skipped {key}: {e}; {skipped[key]}")
            report.results.update(last_results)
            report.text(f"## {key}: skipped", f"{e}", "", f"This run could not compute it: the figures of {key} are "
                        + (f"the last run's (commit {kept_commit(key)})." if last_results else "missing."))
            if last_results and key in blocks:
                report.text(blocks[key].split("\n", 1)[1].rsplit("\n", 1)[0])      # its block, without the markers
        report.text(f"<!-- /section:{key} -->")

    loaded = timed("models (load or train)", lambda: {name: train_or_load(name, args.sample, args.retrain, device)
                                                      for name in SHIPPED_MODELS})
    models = {name: model for name, (model, _) in loaded.items()}
    sidecars = {name: sidecar for name, (_, sidecar) in loaded.items()}
    store = ScoreStore(models)
    folder = {key: dataset_dir(key, args.sample) for key in ("CIFAKE_dir", "CIFAR100_dir", "AGIRI_dir",
                                                            "agiri_subset_dir", "faces_dir", "ddpm32_dir",
                                                            "generators32_dir")}
    reals, own = folder["CIFAKE_dir"] / "test" / "REAL", own_generators.made_folders(benchmark_reals(args.sample))
    audited = {"CIFAKE": (folder["CIFAKE_dir"], None), "AGIRI": (folder["AGIRI_dir"], None),
               sections.AGIRI_SUBSET: (folder["agiri_subset_dir"], None),
               "faces": (folder["faces_dir"], None), "DDPM-32 vs CIFAKE test/REAL": (folder["ddpm32_dir"], reals),
               **{f"{g} vs CIFAKE test/REAL": (folder["generators32_dir"] / g, reals) for g in DEV_GENERATORS
                  if (folder["generators32_dir"] / g).is_dir()},
               **{f"own {g} vs CIFAKE test/REAL": (made, reals)
                  for g, made in own.items()}}
    scored = (models, device, store)
    # The study, step by step (each function: sections.py)
    section("audits", lambda: sections.audits(report, audited, own_generators.not_made(own, args.sample)))
    section("cifake", lambda: sections.cifake(report, sidecars, folder["CIFAKE_dir"], *scored))
    section("validation", lambda: sections.validation(report, sidecars, folder["CIFAKE_dir"], *scored))
    section("cifar100", lambda: sections.cifar100(report, folder["CIFAR100_dir"], *scored))
    section("agiri", lambda: sections.mixed(report, sidecars, folder["AGIRI_dir"], *scored, "agiri", "AGIRI",
                                            "AGIRI test"))
    section("agiri_subset", lambda: sections.agiri_subset(report, sidecars, folder["agiri_subset_dir"], *scored))
    section("faces", lambda: sections.mixed(report, sidecars, folder["faces_dir"], *scored, "faces", "faces",
                                            "DDPM faces vs CelebA-HQ (a stand-in for AGIRI)"))
    section("ddpm32", lambda: sections.ddpm32(report, folder["CIFAKE_dir"], folder["ddpm32_dir"], *scored))
    section("robustness", lambda: sections.robustness(report, folder["CIFAKE_dir"], *scored))
    section("explanations", lambda: sections.explanations(report, folder["CIFAKE_dir"], *scored))
    full_size = model_file(sections.FULL_SIZE_MODEL, args.sample)
    section("fullsize", lambda: sections.fullsize(
        report, full_size, folder["agiri_subset_dir"], (folder["faces_dir"], folder["CIFAKE_dir"], folder["ddpm32_dir"]),
        device, (lambda: train_sample_pretrained("agiri", full_size)) if args.sample else None))
    photo_model = model_file(sections.PHOTO_MODEL, args.sample)
    section("photos", lambda: sections.photos(report, photo_model, folder["agiri_subset_dir"],
                                              dataset_dir("reals_photos_dir", args.sample),
                                              (lambda: train_sample_pretrained("photos", photo_model))
                                              if args.sample else None))
    section("matrix", lambda: sections.matrix(report, out / "matrix.json"))
    if "cifake_test" in report.results:
        sections.transfer_summary(report)
        section("generators", lambda: sections.generators(report, sidecars, folder, *scored, out / "variants.json"))
        section("benchmark", lambda: sections.benchmark(report, out / "variants.json"))
    sections.provenance(report, sidecars)
    report.results.update(sample_data=args.sample, commit=commit, device=str(device), torch=torch.__version__,
                          methods={"bootstrap resamples": BOOTSTRAP_RESAMPLES, "ece bins": ECE_BINS})
    stamp_of = lambda key: (None if skipped.get(key) == "no results" else kept_commit(key)) if key in skipped else \
        kept_commit(key) if args.only and key not in args.only else commit
    report.results["sections"] = {key: stamp_of(key) for key in SECTION_KEYS}
    sections.beside_the_original(report)
    report.text("## Time per step (seconds)", markdown(pd.Series(timings, name="seconds").to_frame(), ".1f"),
                "", f"Total time {time.perf_counter() - started:.0f} s ({machine_description(device)}).")
    print(f"wrote {shown(report.write())}")
    if skipped:
        print("not computed by this run: " + "; ".join(f"{key} ({why})" for key, why in skipped.items()))
    if "cifake_test" in report.results:
        card = model_card(report.results, sidecars)
        folder = model_file(next(iter(SHIPPED_MODELS)), args.sample).parent if not args.out else out
        (folder / "README.md").write_text(card["markdown"])
        (folder / "card.json").write_text(json.dumps(card["data"], indent=2, default=float) + "\n")
        print(f"wrote the model card {shown(folder / 'README.md')} and card.json")
    if not args.sample and not args.out and "cifake_test" in report.results:
        update_readme(readme_tables(report.results))
        print("rewrote the results tables of README.md")


if __name__ == "__main__":
    cli.run(main)
