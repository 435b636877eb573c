"""classes.py: the study's datasets (formats, accounting, content classes, bad files in one line), its CNN and SRM
layer; on the real data where it is there, the counts the README states."""
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from classes import CIFAKE_CNN, SRMLayer, load_agiri, load_cifake, load_cifar100, parse_cifar10_class
from realfake import FAKE, REAL
from realfake.models.networks import count_parameters
from realfake.project import REPO_ROOT, ProjectError

REAL_CIFAKE = REPO_ROOT / "data" / "CIFAKE"


needs_real_cifake = pytest.mark.skipif(not (REAL_CIFAKE / "train").is_dir(),
                                       reason="real CIFAKE not in data/CIFAKE (run code/get_data.py)")


REAL_CIFAR100, REAL_FACES, REAL_DDPM32, REAL_AGIRI_SUBSET = (REPO_ROOT / "data" / name for name in (
    "CIFAR100", "faces-ddpm-celebahq", "ddpm-cifar10-32", "agiri-subset224"))


@pytest.mark.parametrize("name, expected", [("12.jpg", 0), ("12 (2).jpg", 1), ("4999 (10).jpg", 9),
                                            ("7 (11).jpg", -1), ("cat.jpg", -1), ("3 (1).jpg", 0)])
def test_cifar10_class_from_cifake_file_name(name, expected):
    assert parse_cifar10_class(name) == expected


def test_sample_cifake_reads_back_exactly(sample_root):
    data = load_cifake(sample_root / "CIFAKE", "test", use_cache=False)
    assert data.images.shape == (400, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.labels.tolist().count(REAL) == data.labels.tolist().count(FAKE) == 200
    assert data.classes.bincount().tolist() == [40] * 10       # names "N (k).jpg" round-robin over k
    for i in (0, 123, 399):                                    # pixels equal a plain PIL decode of the file
        pil = np.array(Image.open(sample_root / "CIFAKE" / data.sources[i]).convert("RGB"))
        assert torch.equal(data.images[i], torch.from_numpy(pil).permute(2, 0, 1))
        assert data.labels[i] == (REAL if "/REAL/" in data.sources[i] else FAKE)
    assert data.report.found == data.report.loaded == 400 and not data.report.skipped


def test_missing_cifake_gives_one_clear_line(tmp_path):
    with pytest.raises(ProjectError) as e:
        load_cifake(tmp_path / "nowhere", "train")
    message = str(e.value)
    assert "expected folder" in message and "nowhere" in message and "get_data.py" in message
    (tmp_path / "CIFAKE" / "train" / "REAL").mkdir(parents=True)
    with pytest.raises(ProjectError, match="expected folders REAL and FAKE"):
        load_cifake(tmp_path / "CIFAKE", "train")


def test_missing_dataset_in_cli_is_one_line_without_traceback(tmp_path):
    run = subprocess.run([sys.executable, "code/train.py", "--data", str(tmp_path / "none")],
                         cwd=REPO_ROOT, capture_output=True, text=True)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr and run.stderr.strip().count("\n") == 0
    assert run.stderr.startswith("error: CIFAKE not found")


def test_sample_cifar100_has_every_class(sample_root):
    data = load_cifar100(sample_root / "CIFAR100", "test")
    assert len(data.class_names) == 100 and len(data.coarse_names) == 20
    assert set(data.classes.tolist()) == set(range(100)) and set(data.coarse.tolist()) == set(range(20))
    assert (data.labels == REAL).all()
    # fine -> coarse as in the real meta: 'maple_tree' belongs to 'trees'
    i = data.classes.tolist().index(data.class_names.index("maple_tree"))
    assert data.coarse_names[data.coarse[i]] == "trees"


def test_cifar100_channel_planar_layout(tmp_path):
    """Row i of `data` is 1024 red, 1024 green, then 1024 blue values, each plane row-major."""
    image = np.arange(3 * 32 * 32, dtype=np.int64).reshape(3, 32, 32) % 251
    table = {b"data": image.reshape(1, -1).astype(np.uint8), b"fine_labels": [7], b"coarse_labels": [3],
             b"filenames": [b"x.png"], b"batch_label": b"test"}
    meta = {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}
    (tmp_path / "test").write_bytes(pickle.dumps(table))
    (tmp_path / "meta").write_bytes(pickle.dumps(meta))
    data = load_cifar100(tmp_path, "test")
    red_0_1, green_0_0, blue_31_31 = 1 % 251, 1024 % 251, (2 * 1024 + 31 * 32 + 31) % 251
    assert data.images[0, 0, 0, 1] == red_0_1 and data.images[0, 1, 0, 0] == green_0_0
    assert data.images[0, 2, 31, 31] == blue_31_31
    assert data.classes.tolist() == [7] and data.class_names[7] == "f7" and data.sources == ["x.png"]


def test_cifar100_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(ProjectError, match="CIFAR-100 not found"):
        load_cifar100(tmp_path, "test")
    (tmp_path / "test").write_bytes(b"not a pickle")
    (tmp_path / "meta").write_bytes(pickle.dumps({}))
    with pytest.raises(ProjectError, match="not a readable pickle"):
        load_cifar100(tmp_path, "test")
    (tmp_path / "test").write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8)}))
    with pytest.raises(ProjectError, match="lacks the keys"):
        load_cifar100(tmp_path, "test")


def test_sample_agiri_accounts_for_every_file(sample_root):
    data = load_agiri(sample_root / "ai-generated-images-vs-real-images", use_cache=False)
    files = [p for p in (sample_root / "ai-generated-images-vs-real-images" / "test").rglob("*") if p.is_file()]
    report = data.report
    assert report.found == len(files) == report.loaded + len(report.skipped)
    assert dict(report.skipped) == {"test/fake/truncated.jpg": "truncated", "test/fake/corrupt.jpg": "not an image",
                                    "test/fake/empty.png": "zero bytes", "test/fake/readme.txt": "not an image"}
    assert len(data) == report.loaded == 48 and data.images.shape == (48, 3, 32, 32)
    assert "loaded 48 of 52 images, skipped 4 (2 not an image, 1 truncated, 1 zero bytes)" == report.summary()


@pytest.mark.parametrize("preprocess, crops", [("resize", 1), ("center_crop", 1), ("multi_crop", 9)])
def test_agiri_preprocessings(sample_root, preprocess, crops):
    data = load_agiri(sample_root / "ai-generated-images-vs-real-images", preprocess=preprocess)
    assert data.crops_per_image == crops and data.images.shape == (len(data) * crops, 3, 32, 32)


def test_agiri_class_folders_are_case_insensitive(tmp_path):
    for folder in ("FAKE", "Real"):
        (tmp_path / "test" / folder).mkdir(parents=True)
        Image.new("RGB", (50, 40), (10, 20, 30)).save(tmp_path / "test" / folder / "a.png")
    data = load_agiri(tmp_path, use_cache=False)
    assert sorted(data.labels.tolist()) == [FAKE, REAL]


def test_agiri_loads_a_flat_fake_real_folder_when_there_is_no_test_split(sample_root, tmp_path):
    data = load_agiri(sample_root / "agiri-subset224", name="subset", use_cache=False)
    assert ((data.labels == FAKE).sum(), (data.labels == REAL).sum()) == (24, 20) and not data.report.skipped
    assert data.name == "subset" and all(s.split("/")[0] in ("fake", "real") for s in data.sources)
    (tmp_path / "fake").mkdir()
    with pytest.raises(ProjectError, match="AGIRI not found"):                   # half a layout: one line
        load_agiri(tmp_path, use_cache=False)


def test_srm_layer_shapes_gates_and_gradients():
    layer = SRMLayer(6)
    x = torch.randn(8, 6, 14, 14, requires_grad=True)
    y = layer(x)
    assert y.shape == x.shape and layer.gate.shape == (8, 6)
    assert ((layer.gate > 0) & (layer.gate < 1)).all()
    y.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())
    assert x.grad.abs().sum() > 0


def test_cnn_shapes_and_parameter_counts():
    x = torch.randn(5, 3, 32, 32)
    assert CIFAKE_CNN()(x).shape == (5,)
    assert count_parameters(CIFAKE_CNN()) == 61_241                  # the original study's count
    attn = CIFAKE_CNN(attn=True)
    assert attn(x).shape == (5,) and count_parameters(attn) == 61_241 + 24
    assert attn.srm.gate.shape == (5, 6)


@pytest.mark.real_data
@needs_real_cifake
@pytest.mark.parametrize("split, per_class", [("train", 50_000), ("test", 10_000)])
def test_real_cifake_counts_and_balance(split, per_class):
    data = load_cifake(REAL_CIFAKE, split)
    assert data.images.shape == (2 * per_class, 3, 32, 32) and not data.report.skipped
    assert (data.labels == REAL).sum() == (data.labels == FAKE).sum() == per_class
    for label in (REAL, FAKE):
        counts = data.classes[data.labels == label].bincount(minlength=10)
        assert counts.tolist() == [per_class // 10] * 10


@pytest.mark.real_data
@needs_real_cifake
def test_real_cifake_has_378_test_fakes_leaked_from_train():
    from realfake.evaluation.scoring import leaked_test_images
    test, train = load_cifake(REAL_CIFAKE, "test"), load_cifake(REAL_CIFAKE, "train")
    leaked = leaked_test_images(test, train)
    assert leaked.sum() == 378 and (test.labels[torch.from_numpy(leaked)] == FAKE).all()


@pytest.mark.real_data
@pytest.mark.skipif(not (REAL_CIFAR100 / "test").is_file(),
                    reason="CIFAR-100 not in data/CIFAR100 (../shared/data/cifar100-sample10k.tar.gz or get_data.py)")
def test_real_cifar100_sample_has_100_images_per_fine_class_within_meta_coarse_classes():
    data = load_cifar100(REAL_CIFAR100)
    assert len(data) == 10_000 and data.classes.bincount(minlength=100).tolist() == [100] * 100
    pairs = set(zip(data.classes.tolist(), data.coarse.tolist()))
    assert len(pairs) == 100                                   # each fine class within one coarse class
    assert torch.tensor([c for _, c in pairs]).bincount(minlength=20).tolist() == [5] * 20
    fine, coarse = data.class_names.index("apple"), data.coarse_names.index("fruit_and_vegetables")
    assert (fine, coarse) in pairs and len(data.class_names) == 100 and len(data.coarse_names) == 20


@pytest.mark.real_data
@pytest.mark.skipif(not (REAL_FACES / "test").is_dir() or not REAL_DDPM32.is_dir(),
                    reason="the faces and DDPM-32 sets are not in data/ (../shared/data/*.tar.gz)")
def test_real_transfer_sets_load_every_file():
    from realfake.data.datasets import load_fakes
    faces = load_agiri(REAL_FACES, name="faces")
    assert (faces.labels == FAKE).sum() == 100 and (faces.labels == REAL).sum() == 2048 and not faces.report.skipped
    ddpm = load_fakes(REAL_DDPM32, "DDPM-32")
    assert len(ddpm) == 129 and (ddpm.labels == FAKE).all() and ddpm.images.shape[1:] == (3, 32, 32)


@pytest.mark.real_data
@pytest.mark.skipif(not (REAL_AGIRI_SUBSET / "fake").is_dir(),
                    reason="the AGIRI train subset is not in data/ (../shared/data/agiri-subset224.tar.gz)")
def test_real_agiri_subset_loads_every_file():
    data = load_agiri(REAL_AGIRI_SUBSET, name="AGIRI train subset, 224 px, re-saved")
    assert (data.labels == FAKE).sum() == 969 and (data.labels == REAL).sum() == 800 and not data.report.skipped
