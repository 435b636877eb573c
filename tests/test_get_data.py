"""code/get_data.py, realfake/data/sources.py and manifest.py: every dataset from its origin, up to the network call.

The conversions run on files the tests make in each source's format (sample grids with and without padding,
numbered PNG samples, files published under other names); the manifest check on good and tampered copies; the
whole download on archives laid out as GitHub and Kaggle serve them, with the temporary folder never left behind.
"""
import io
import subprocess
import sys
import tarfile
from dataclasses import replace

import get_data
import numpy as np
import pytest
from PIL import Image

from realfake.data import manifest, sources
from realfake.data.manifest import Entry, compare, describe, read_manifest, write_manifest
from realfake.data.sources import DATASETS, STUDY, Dataset, GridTiles, copy_published, github, jpeg_numbered
from realfake.project import REPO_ROOT, ProjectError, config_path

RNG = np.random.default_rng(0)


def tiles(n):
    """Smooth random 32x32 samples (4x4 colours, upscaled), which JPEG keeps close, each unlike the others."""
    return [np.asarray(Image.fromarray(RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((32, 32),
                                                                                               Image.BILINEAR))
            for _ in range(n)]


def grid(parts, rows, cols, padding):
    """A sample grid as torchvision's make_grid lays it out (black padding around and between the tiles)."""
    step = 32 + padding
    image = np.zeros((rows * step + padding, cols * step + padding, 3), dtype=np.uint8)
    for k, tile in enumerate(parts):
        r, c = divmod(k, cols)
        image[padding + r * step:padding + r * step + 32, padding + c * step:padding + c * step + 32] = tile
    return Image.fromarray(image)


def decoded(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def quality75_tables():
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, "JPEG", quality=75)
    return Image.open(buffer).quantization


# ----------------------------------------------------------------------------------------------
# Conversions

@pytest.mark.parametrize("rows, cols, padding, stem, name, first", [
    (10, 10, 0, "dcgan", lambda stem: stem, "dcgan_000.jpg"),                       # chainer-gan-lib
    (8, 8, 2, "epoch_12", sources.glow_name, "ep012_00.jpg"),                        # chrischute/glow
    (5, 5, 0, "pcnn_lr:0.00040_nr-resnet5_nr-filters160_20", sources.pixelcnnpp_name, "r5_ep020_00.jpg"),
])
def test_grids_are_cut_on_their_tile_geometry(tmp_path, rows, cols, padding, stem, name, first):
    parts = tiles(rows * cols)
    grid(parts, rows, cols, padding).save(tmp_path / f"{stem}.png")
    GridTiles(rows, cols, padding, name)([tmp_path / f"{stem}.png"], tmp_path / "out")
    made = sorted((tmp_path / "out").iterdir())
    assert len(made) == rows * cols and made[0].name == first
    last = made[-1]
    assert decoded(last).shape == (32, 32, 3)
    # each tile is its own sample (row by row), not a neighbour's or the padding: JPEG q75 stays close to it
    errors = [np.abs(decoded(f) - part).mean() for f, part in zip(made, parts)]
    shifted = np.abs(decoded(made[0]) - parts[1]).mean()
    assert max(errors) < 0.5 * shifted
    assert Image.open(made[0]).quantization == quality75_tables()          # CIFAKE's own JPEG tables


def test_a_grid_of_another_geometry_is_refused_with_its_name(tmp_path):
    grid(tiles(64), 8, 8, 0).save(tmp_path / "epoch_3.png")                  # glow's grids have 2 px of padding
    with pytest.raises(ProjectError, match=r"epoch_3.png: a 256x256 grid, expected 274x274"):
        GridTiles(8, 8, 2, sources.glow_name)([tmp_path / "epoch_3.png"], tmp_path / "out")


def test_files_that_are_not_sample_grids_are_skipped():
    assert sources.glow_name("loss_curve") is None and sources.pixelcnnpp_name("cifar_12") is None


def test_numbered_samples_become_jpeg_quality_75_named_by_their_running_number(tmp_path):
    parts = tiles(2)
    for name, part in zip(("7.png", "sample_12.png"), parts):
        Image.fromarray(part).save(tmp_path / name)
    jpeg_numbered([tmp_path / "7.png", tmp_path / "sample_12.png"], tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00007.jpg", "00012.jpg"]
    assert np.abs(decoded(tmp_path / "out" / "00012.jpg") - parts[1]).mean() < \
        0.5 * np.abs(decoded(tmp_path / "out" / "00012.jpg") - parts[0]).mean()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "8.png")
    with pytest.raises(ProjectError, match="8.png: 64x64, expected a 32x32 sample"):
        jpeg_numbered([tmp_path / "8.png"], tmp_path / "out")


def test_published_files_are_placed_where_the_manifest_lists_their_content(tmp_path):
    source = tmp_path / "repo" / "images" / "train"
    source.mkdir(parents=True)
    for name, content in (("2092.jpg", b"one"), ("8049.jpg", b"two"), ("not_chosen.jpg", b"three")):
        (source / name).write_bytes(content)
    reference = tmp_path / "reference"
    reference.mkdir()
    (reference / "train_2092.jpg").write_bytes(b"one")
    (reference / "train_8049.jpg").write_bytes(b"two")
    copy_published(sorted(source.iterdir()), tmp_path / "out", describe(reference, progress=False))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["train_2092.jpg", "train_8049.jpg"]


# ----------------------------------------------------------------------------------------------
# Manifests

def test_a_manifest_round_trips_in_parts_and_names_every_difference(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    (folder / "a").mkdir(parents=True)
    for k in range(5):
        (folder / "a" / f"{k}.jpg").write_bytes(bytes([k]) * (k + 1))
    (folder / ".cache").mkdir()
    (folder / ".cache" / "x.npz").write_bytes(b"cache")                      # the project's cache is no dataset file
    monkeypatch.setattr(manifest, "MANIFEST_PART_LINES", 2)
    written = write_manifest("toy", describe(folder, progress=False), tmp_path / "manifests")
    assert [f.name for f in written] == ["toy.1.tsv.gz", "toy.2.tsv.gz", "toy.3.tsv.gz"]
    assert write_manifest("toy", describe(folder, progress=False), tmp_path / "manifests")[0].read_bytes() == \
        written[0].read_bytes()                                              # the same files give the same bytes
    entries = read_manifest("toy", tmp_path / "manifests")
    assert sorted(entries) == [f"a/{k}.jpg" for k in range(5)] and compare(folder, entries, progress=False).ok

    (folder / "a" / "1.jpg").write_bytes(b"\x02\x02")                         # same size, other bytes
    (folder / "a" / "2.jpg").write_bytes(b"longer than before")
    (folder / "a" / "3.jpg").unlink()
    (folder / "a" / "extra.jpg").write_bytes(b"new")
    result = compare(folder, entries, progress=False)
    assert (result.missing, result.unexpected, result.different) == (["a/3.jpg"], ["a/extra.jpg"],
                                                                    ["a/1.jpg", "a/2.jpg"])
    assert result.summary() == ("1 missing (a/3.jpg); 1 not in the manifest (a/extra.jpg); "
                                "2 different from the manifest (a/1.jpg, a/2.jpg)")


def test_md5_entries_without_a_size_check_the_official_files(tmp_path):
    (tmp_path / "meta").write_bytes(b"meta")
    entries = {"meta": Entry("meta", None, "md5:" + __import__("hashlib").md5(b"meta").hexdigest())}
    assert compare(tmp_path, entries, progress=False).ok
    (tmp_path / "meta").write_bytes(b"atem")
    assert compare(tmp_path, entries, progress=False).different == ["meta"]


def test_every_dataset_but_agiri_has_a_manifest_its_sources_cover():
    for name, dataset in DATASETS.items():
        if dataset.layout:                                                   # AGIRI: no copy here to record
            assert not manifest.has_manifest(name)
            continue
        entries = read_manifest(name)                                        # raises without one
        intos = [s.into for s in dataset.sources]
        assert not intos or all(any(not i or p.startswith(f"{i}/") for i in intos) for p in entries), name
    assert set(STUDY) == {n for n, d in DATASETS.items() if not d.not_downloadable}
    for dataset in DATASETS.values():
        for source in dataset.sources:
            assert source.url.startswith("https://") and source.patterns and callable(source.convert)


HAVE_DATA = {name: config_path(d.key).is_dir() for name, d in DATASETS.items()}


@pytest.mark.parametrize("name", [n for n in DATASETS if n not in ("agiri", "cifar100")])
def test_the_committed_manifests_match_the_archives_the_figures_were_made_with(name):
    if not HAVE_DATA[name] or (name == "cifar100-sample10k" and (config_path("CIFAR100_dir") / "train").exists()):
        pytest.skip(f"{name} is not in data/ (unpack ../shared/data or run get_data.py {name})")
    ok, message = get_data.check(name)
    assert ok, message


# ----------------------------------------------------------------------------------------------
# Downloads, end to end up to the network call

def github_archive(path, repo_folder, files):
    """A .tar.gz as GitHub serves a repository at a commit: everything below one top folder."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{repo_folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def toy_dataset(tmp_path, monkeypatch):
    """A dataset in the registry made of two sources of one repository (a 5x5 grid, a published file), its manifest
    recorded from a conversion made here, and config.json's folder for it under tmp_path."""
    grid_png = png_bytes(grid(tiles(25), 5, 5, 0))
    archive = github_archive(tmp_path / "repo.tar.gz", "repo-abc1234", {
        "images/pcnn_lr:0.00040_nr-resnet5_nr-filters160_20.png": grid_png,
        "images/pcnn_lr:0.00040_nr-resnet5_nr-filters160_2.png": grid_png,  # an epoch the dataset leaves out
        "photos/train/2092.jpg": b"a published photograph",
        "README.md": b"not matched"})
    dataset = Dataset("toy", "toy_dir", "a toy", "MIT", "the tests", sources=(
        github("someone/repo", "abc1234", ("images/pcnn_*.png",), GridTiles(5, 5, 0, sources.pixelcnnpp_name),
               into="pixelcnnpp/fake"),
        github("someone/repo", "abc1234", ("photos/*.jpg",), copy_published, into="photos")))
    monkeypatch.setattr(manifest, "MANIFEST_DIR", tmp_path / "manifests")
    monkeypatch.setitem(DATASETS, "toy", dataset)
    monkeypatch.setattr(get_data, "config_path", lambda key: tmp_path / "data" / key)
    reference = tmp_path / "reference"                  # the dataset as recorded: epoch 20's tiles and the photograph
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "pcnn_lr:0.00040_nr-resnet5_nr-filters160_20.png").write_bytes(grid_png)
    GridTiles(5, 5, 0, sources.pixelcnnpp_name)(sorted((tmp_path / "src").iterdir()), reference / "pixelcnnpp/fake")
    (reference / "photos").mkdir()
    (reference / "photos" / "train_2092.jpg").write_bytes(b"a published photograph")
    write_manifest("toy", describe(reference, progress=False))
    fetched = []
    def fetch(url, folder):
        fetched.append(url)
        return archive
    return {"target": tmp_path / "data" / "toy_dir", "fetch": fetch, "fetched": fetched, "archive": archive}


def leftovers(target):
    return list(target.parent.glob(".download-*")) if target.parent.exists() else []


def test_a_download_is_converted_checked_and_moved_into_place(toy_dataset, capsys):
    target = toy_dataset["target"]
    assert get_data.download("toy", fetch=toy_dataset["fetch"], is_reachable=lambda host: True) == target
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*.jpg"))[:2] == \
        ["photos/train_2092.jpg", "pixelcnnpp/fake/r5_ep020_00.jpg"]
    assert len(list((target / "pixelcnnpp" / "fake").iterdir())) == 25
    assert toy_dataset["fetched"] == ["https://github.com/someone/repo/archive/abc1234.tar.gz"] * 2
    out = capsys.readouterr().out
    assert "25 converted files are not part of the dataset" in out and "ready at" in out
    assert not leftovers(target)
    # a second run finds it in place and fetches nothing
    assert get_data.download("toy", fetch=lambda *a: pytest.fail("must not fetch"), is_reachable=lambda h: True)


def test_a_download_that_does_not_match_its_manifest_names_the_files_and_leaves_nothing(toy_dataset):
    entries = read_manifest("toy")
    entries["pixelcnnpp/fake/r5_ep020_03.jpg"] = replace(entries["pixelcnnpp/fake/r5_ep020_03.jpg"],
                                                         digest="sha256:" + "0" * 64)
    write_manifest("toy", entries)
    target = toy_dataset["target"]
    with pytest.raises(ProjectError, match=r"1 different from the manifest \(pixelcnnpp/fake/r5_ep020_03.jpg\)"):
        get_data.download("toy", fetch=toy_dataset["fetch"], is_reachable=lambda host: True)
    assert not target.exists() and not leftovers(target)


def test_a_broken_archive_fails_in_one_line_and_leaves_nothing(toy_dataset, tmp_path):
    (tmp_path / "broken.tar.gz").write_bytes(b"not gzip")
    target = toy_dataset["target"]
    with pytest.raises(ProjectError, match="toy: download failed .*by hand"):
        get_data.download("toy", fetch=lambda url, folder: tmp_path / "broken.tar.gz", is_reachable=lambda h: True)
    assert not target.exists() and not leftovers(target)


def test_check_names_tampered_files_and_which_dataset_a_shared_folder_holds(toy_dataset, monkeypatch):
    target = toy_dataset["target"]
    get_data.download("toy", fetch=toy_dataset["fetch"], is_reachable=lambda host: True)
    assert get_data.check("toy")[0]
    (target / "photos" / "train_2092.jpg").write_bytes(b"edited")
    ok, message = get_data.check("toy")
    assert not ok and "1 different from the manifest (photos/train_2092.jpg)" in message
    # a second dataset sharing the folder: the message says which of the two the folder holds
    write_manifest("toy-other", describe(target, progress=False))
    monkeypatch.setitem(DATASETS, "toy-other", Dataset("toy-other", "toy_dir", "another toy", "", ""))
    ok, message = get_data.check("toy")
    assert not ok and "holds toy-other (another toy), not toy" in message
    with pytest.raises(ProjectError, match="move or delete .* and run again"):          # never overwritten
        get_data.download("toy", fetch=toy_dataset["fetch"], is_reachable=lambda host: True)


@pytest.mark.parametrize("name", STUDY)
def test_offline_every_dataset_fails_at_once_with_its_origin_and_the_manual_step(name, tmp_path, monkeypatch):
    monkeypatch.setattr(get_data, "config_path", lambda key: tmp_path / key)
    with pytest.raises(ProjectError) as e:
        get_data.download(name, fetch=lambda *a: pytest.fail("must not download"), is_reachable=lambda h: False)
    message = str(e.value)
    assert "\n" not in message and f"cannot reach {DATASETS[name].host}" in message and "by hand" in message
    assert all(s.url in message for s in DATASETS[name].sources)
    assert not any(tmp_path.iterdir())


def test_the_cli_offline_is_quick_and_clear(tmp_path):
    code = ("import sys; sys.path.insert(0, 'code'); import get_data; from pathlib import Path;"
            f"get_data.config_path = lambda key: Path({str(tmp_path)!r}) / key;"
            "get_data.reachable = lambda host, timeout=5: False; get_data.main(['cifar100', 'faces', 'agiri'])")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.count("by hand") == 3 and "not done: cifar100, faces, agiri" in result.stderr
    unreachable = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'code'); import get_data;"
                                  "print(get_data.reachable('unreachable.invalid', timeout=2))"],
                                 cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    assert unreachable.stdout.strip() == "False"


def test_the_pooled_cifar100_sample_says_why_it_cannot_be_downloaded():
    with pytest.raises(ProjectError, match="cannot be rebuilt; `get_data.py cifar100` gives the official files"):
        get_data.download("cifar100-sample10k")


# ----------------------------------------------------------------------------------------------
# Kaggle datasets

def fake_kaggle(build):
    """A stand-in for kagglehub.dataset_download: the dataset's tree one folder down in the folder it returns."""
    def fetch(handle, folder):
        build(folder / handle.split("/")[1])
        return folder
    return fetch


def agiri_tree(folder):
    for split in ("train", "test"):
        for side in ("fake", "real"):
            (folder / split / side).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(folder / split / side / "a.png")


@pytest.mark.parametrize("train, kept", [(False, ["test"]), (True, ["test", "train"])])
def test_agiri_keeps_its_test_folder_and_with_train_its_train_folder(tmp_path, monkeypatch, train, kept):
    target = tmp_path / "data" / "agiri"
    monkeypatch.setattr(get_data, "config_path", lambda key: target)
    get_data.download("agiri", train, fake_kaggle(agiri_tree), is_reachable=lambda h: True)
    assert sorted(p.name for p in target.iterdir()) == kept and not leftovers(target)
    ok, message = get_data.check("agiri", train=train)
    assert ok and "test/fake: 1 files" in message and ("train/real: 1 files" in message) == train


def test_a_kaggle_download_that_does_not_match_the_manifest_is_refused(tmp_path, monkeypatch):
    target = tmp_path / "data" / "CIFAKE"
    monkeypatch.setattr(get_data, "config_path", lambda key: target)
    def build(folder):
        (folder / "train" / "REAL").mkdir(parents=True)
        (folder / "test").mkdir()
        (folder / "train" / "REAL" / "mine.jpg").write_bytes(b"not CIFAKE's")
    with pytest.raises(ProjectError, match=r"cifake: the download does not match: 120000 missing .*; 1 not in the"):
        get_data.download("cifake", fetch=fake_kaggle(build), is_reachable=lambda h: True)
    assert not target.exists() and not leftovers(target)


@pytest.mark.parametrize("name", ["faces", "cifake"])
def test_train_applies_to_agiri_only(name):
    with pytest.raises(ProjectError, match="--train applies to agiri only"):
        get_data.download(name, train=True)


def test_an_archive_cut_short_fails_in_one_line_and_leaves_nothing(toy_dataset, tmp_path):
    whole = toy_dataset["archive"].read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(ProjectError, match="toy: download failed .*by hand"):
        get_data.download("toy", fetch=lambda url, folder: tmp_path / "cut.tar.gz", is_reachable=lambda h: True)
    assert not toy_dataset["target"].exists() and not leftovers(toy_dataset["target"])


def test_the_readme_table_is_the_one_get_data_prints():
    assert get_data.table() in (REPO_ROOT / "README.md").read_text()
