"""publishing/publish.py: the README's results tables, the model card and predict.py's out-of-domain notice, all
from results files."""
import json

import pandas as pd
import pytest

from realfake.project import ProjectError
from realfake.publishing import publish
from realfake.publishing.publish import out_of_domain_notice

pytest.importorskip("tabulate", reason="tabulate is not installed")


def test_out_of_domain_notice_quotes_the_model_card(tmp_path):
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"models": {"m": {"transfer": {"faces AUROC (resize)": 0.4321}}}}))
    table = pd.DataFrame({"in_domain": [True, False, False]})
    notice = out_of_domain_notice(table, "m", card)
    assert "2 of 3 images are not 32x32" in notice and "0.43" in notice and "models/README.md" in notice
    assert "no transfer figure" in out_of_domain_notice(table, "other", card)
    assert out_of_domain_notice(table.iloc[:1], "m", card) is None


def test_the_readme_blocks_are_filled_from_results(tmp_path):
    model = {"n": 20000, "epochs": 10, "accuracy": 0.9173, "accuracy at val threshold": 0.91755,
             "val threshold": 0.4885,
             "f1_fake": 0.918, "f1_real": 0.917, "auroc": 0.97241, "ap": 0.974, "accuracy_dedup": 0.917,
             "parameters": 61241, "training seconds": 118.0, "accuracy at val threshold, 95% low": 0.9136,
             "accuracy at val threshold, 95% high": 0.9212, "auroc, 95% low": 0.97, "auroc, 95% high": 0.975}
    results = {"cifake_test": {"models": {"base_model": model, "strong_model": dict(model, parameters=281697)}},
               "robustness": {"results": [{"perturbation": p, "model": m, "accuracy": 0.5, "auroc": 0.75}
                                          for p in ("none", "jpeg q75") for m in ("base_model", "strong_model")]}}
    tables = publish.readme_tables(results)
    assert "91.73%" in tables["replication"] and "91.70%" in tables["replication"]     # ours, and the original's
    assert "281,697" in tables["strong"] and "97.62%" in tables["strong"]              # ours, and the anchor
    assert "robustness" not in tables                        # the report and the paper carry it
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:replication -->\nstale table\n<!-- /results:replication -->\nend\n")
    publish.update_readme({"replication": tables["replication"]}, readme)
    text = readme.read_text()
    assert "stale" not in text and "91.73%" in text and text.startswith("intro\n") and text.endswith("end\n")
    with pytest.raises(ProjectError, match="results:strong"):
        publish.update_readme({"strong": tables["strong"]}, readme)


def test_the_model_card_is_generated_from_sidecars_and_results():
    results = {"cifake_test": {"models": {"m": {"accuracy": 0.9, "accuracy at val threshold": 0.91, "auroc": 0.95,
                                                 "ece": 0.01, "ece before calibration": 0.03, "temperature": 0.7}}},
               "transfer": {"m": {"CIFAKE test AUROC": 0.95, "faces AUROC (resize)": 0.42}},
               "robustness": {"results": [{"perturbation": p, "model": "m", "accuracy": a, "auroc": 0.8}
                                          for p, a in (("none", 0.9), ("blur sigma 1.0", 0.6), ("jpeg q75", 0.89))]}}
    sidecar = {"arch": "cnn", "parameters": 61241, "recipe": "original", "epochs": 10, "n_train": 90000,
               "n_val": 10000, "seed": 0, "threshold": 0.5, "device": "cpu", "torch": "2", "git_commit": "abc"}
    card = publish.model_card(results, {"m": sidecar})
    assert card["data"]["models"]["m"]["robustness"]["worst perturbation"] == "blur sigma 1.0"
    assert card["data"]["models"]["m"]["transfer"]["faces AUROC (resize)"] == 0.42
    for text in ("## m", "61,241 parameters", "90,000 CIFAKE training images", "ECE 0.0300 -> 0.0100",
                 "faces AUROC (resize) 0.4200", "Known limitations", "recipe `original`, 10 epochs;"):
        assert text in card["markdown"]
    assert "-dirty" not in card["markdown"]
    # the recipe that reproduces a model comes from results["models"] (its sidecar may predate the recipe's name)
    results["models"] = {"m": {"recipe": {"name": "strong_aug"}, "command": "python code/train.py -mf m"}}
    card = publish.model_card(results, {"m": dict(sidecar, epochs=1, recipe="strong", git_commit="abc-dirty")})
    assert "recipe `strong_aug`, 1 epoch;" in card["markdown"] and "`python code/train.py -mf m`" in card["markdown"]
    assert "uncommitted edits" in card["markdown"] and card["data"]["models"]["m"]["recipe"] == "strong_aug"


def test_the_full_size_model_gets_a_card_entry_and_a_readme_row_and_own_audits_stay_in_the_report():
    held = lambda auroc: {"n_fake": 194, "n_real": 160, "auroc": auroc, "auroc, 95% low": auroc - 0.01,
                          "auroc, 95% high": auroc + 0.01, "accuracy": 0.91}
    results = {"fullsize": {
        "model": "agiri_model", "ships": True, "shipping rule": "the rule", "choice": "probe", "threshold": 0.5,
        "temperature": 2.0, "n_train": 1415, "git_commit": "abc", "device": "cpu",
        "held-out": {"all fakes": held(0.98), "JPEG fakes": held(0.9684), "format test": {
            "PNG fakes saved as JPEG q75": {"mean change in P(real)": 0.026}}},
        "transfer": {"faces": {"auroc": 0.4154}, "DDPM-32": {"auroc": 0.3977}},
        "held-out by short side": {"64": {"AUROC, JPEG fakes": 0.9328}, "128": {"AUROC, JPEG fakes": 0.9618}}},
        "audit": {name: {"metadata AUROC": 0.5, "colour statistics AUROC": 0.6, "flags": 0, "duplicate groups": 0,
                         "test files in train": 0} for name in ("CIFAKE", "own gan vs CIFAKE test/REAL")}}
    entry = publish.full_size_entry(results)
    assert entry["ships"] and entry["held-out AUROC, JPEG fakes"] == 0.9684 and "1,415 images" in entry["limitations"]
    assert entry["transfer AUROC"] == {"faces": 0.4154, "DDPM-32": 0.3977}
    lines = "\n".join(publish.full_size_lines(entry))
    assert "Verdict: **ships**" in lines and "faces AUROC 0.4154" in lines and "+0.0260" in lines
    assert "AUROC on the JPEG fakes: 64 px 0.9328; 128 px 0.9618." in lines and "224 px or more" in lines
    replaced = "\n".join(publish.full_size_lines(entry, replaced_by="photo_model"))
    assert "Replaced: predict.py gives full-size images to photo_model, and agiri_model fails rules.PHOTO_RULE" in replaced
    tables = publish.readme_tables({**results, "cifake_test": {"models": {}}})
    assert "CIFAKE" in tables["audit"] and "own gan" not in tables["audit"] and "fullsize" not in tables


def test_report_tables_print_counts_as_whole_numbers():
    pytest.importorskip("tabulate", reason="tabulate is not installed")
    from realfake.publishing import reporting
    table = pd.DataFrame({"n": [20000.0, 400.0], "accuracy": [0.91734, 0.5]}, index=["a", "b"])
    text = reporting.markdown(table)
    assert "20000 " in text and "20000.0" not in text and "0.9173" in text
