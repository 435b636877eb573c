"""evaluation/audit.py: each planted shortcut is flagged with the right feature named; a clean set is not."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from realfake.data import file_facts
from realfake.evaluation import audit
from realfake.project import REPO_ROOT, ProjectError

N = 60                                                     # images per class and split


def picture(rng, size):
    """A random smooth picture: JPEG sizes vary with its content, as real files' do."""
    small = rng.integers(0, 256, (int(rng.integers(2, 9)), int(rng.integers(2, 9)), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)


def write_set(root, real=None, fake=None, splits=("train", "test"), seed=0):
    """A dataset in CIFAKE's layout; `real` / `fake` override how that class is saved (size, format, quality, exif)."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for name, options in (("REAL", real or {}), ("FAKE", fake or {})):
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True)
            for i in range(N):
                size = options.get("size") or int(rng.choice([40, 56, 64, 72]))
                fmt = options.get("format", "JPEG")
                extra = {"quality": options.get("quality", 85)} if fmt == "JPEG" else {}
                if options.get("exif"):
                    exif = Image.Exif()
                    exif[0x010F] = "camera"
                    extra["exif"] = exif
                picture(rng, size).save(folder / f"{i}.{'jpg' if fmt == 'JPEG' else 'png'}", fmt, **extra)
    return root


def named(report):
    return [f["feature"].split("=")[0] for f in report["metadata_shortcut"]["features"][:3]]


@pytest.mark.parametrize("real, fake, expected", [
    ({}, {"size": 48}, {"width", "height", "aspect"}),                      # fakes all one size
    ({"quality": 95}, {"quality": 75}, {"jpeg_quality", "qtables"}),      # JPEG quality 95 against 75
    ({"format": "PNG"}, {}, {"format", "qtables", "subsampling", "jpeg_quality", "bytes", "bytes_per_pixel"}),
    ({"exif": True}, {}, {"exif"}),                                         # EXIF only on the real side
])
def test_each_planted_metadata_shortcut_is_flagged_with_its_feature(tmp_path, real, fake, expected):
    report = audit.audit(write_set(tmp_path / "set", real, fake), colour=False, verbose=False)
    assert report["metadata_shortcut"]["auroc"] > 0.9 and report["flags"]
    assert expected & set(named(report)), named(report)
    assert "metadata alone separates the classes" in report["flags"][0]


def test_a_clean_set_is_not_flagged(tmp_path):
    report = audit.audit(write_set(tmp_path / "set", {"size": 48}, {"size": 48}), verbose=False)
    assert report["flags"] == [] and report["metadata_shortcut"]["auroc"] < audit.FLAG_AUROC
    assert report["duplicates"]["groups"] == 0 and report["colour_statistics"]["n"] == 2 * N
    low, high = report["metadata_shortcut"]["auroc_95"]
    assert low <= report["metadata_shortcut"]["auroc"] <= high


def test_the_same_file_in_both_classes_and_in_both_splits_is_flagged(tmp_path):
    root = write_set(tmp_path / "set", {"size": 48}, {"size": 48})
    (root / "train" / "FAKE" / "copy.jpg").write_bytes((root / "train" / "REAL" / "3.jpg").read_bytes())
    (root / "test" / "REAL" / "leak.jpg").write_bytes((root / "train" / "REAL" / "5.jpg").read_bytes())
    report = audit.audit(root, colour=False, verbose=False)
    flags = " ".join(report["flags"])
    assert "appear in both classes" in flags and "span splits" in flags and "1 test files are in train" in flags
    assert report["duplicates"]["groups"] == 2 and report["duplicates"]["test_files_in_train"] == 1


def test_layouts_without_splits_and_in_cnndetection_names(tmp_path):
    flat = write_set(tmp_path / "flat", {"size": 48}, {"size": 48}, splits=("",))
    assert {split for split, _, _ in file_facts.find_layout(flat)} == {"all"}
    for old, new in (("REAL", "0_real"), ("FAKE", "1_fake")):
        (flat / old).rename(flat / new)
    report = audit.audit(flat, verbose=False)                 # colour statistics read 0_real / 1_fake too
    assert report["files"] == 2 * N and report["colour_statistics"]["n"] == 2 * N
    with pytest.raises(ProjectError, match="expected two class folders"):
        file_facts.find_layout(tmp_path / "flat" / "0_real")


def test_cli_lists_bad_files_writes_json_and_markdown_and_sets_exit_codes(tmp_path):
    root = write_set(tmp_path / "set", {"size": 48}, {"size": 64})
    (root / "test" / "FAKE" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    command = [sys.executable, "code/audit.py", str(root), "--json", str(tmp_path / "a.json"), "--markdown",
               str(tmp_path / "a.md"), "--fail-on-shortcut"]
    flagged = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert flagged.returncode == 3, flagged.stderr
    lines = flagged.stdout.splitlines()
    summary = next(i for i, line in enumerate(lines) if line.startswith("audit of"))
    assert lines[summary + 1].startswith("FLAG: metadata alone") and "broken.jpg: corrupt image data" in flagged.stdout
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["bad_files"] == [["test/FAKE/broken.jpg", "corrupt image data"]]
    assert "| test Fake" in (tmp_path / "a.md").read_text()
    clean = write_set(tmp_path / "clean", {"size": 48}, {"size": 48})
    assert subprocess.run([*command[:2], str(clean), "--fail-on-shortcut"], cwd=REPO_ROOT, capture_output=True,
                          timeout=300).returncode == 0
    unknown = subprocess.run([*command[:2], str(tmp_path)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 1 and "expected two class folders" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_jpeg_quality_is_read_back_from_the_quantisation_tables(tmp_path):
    rng = np.random.default_rng(0)
    for quality in (50, 75, 90, 95):
        picture(rng, 32).save(tmp_path / "q.jpg", "JPEG", quality=quality)
        assert file_facts.file_facts(tmp_path / "q.jpg")["jpeg_quality"] == quality
    picture(rng, 32).save(tmp_path / "p.jpg", "PNG")                     # a PNG named .jpg
    facts = file_facts.file_facts(tmp_path / "p.jpg")
    assert facts["format"] == "PNG" and facts["extension_mismatch"] and facts["jpeg_quality"] == -1
