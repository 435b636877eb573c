"""classes.py: the three datasets (formats, accounting, content classes, the validation split), the batcher, the
networks; the real CIFAKE's facts where it is unpacked in data/CIFAKE."""
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from checkpoints import load_model, save_model
from classes import (CIFAKE_CNN, FAKE, REAL, Batcher, SRMLayer, StrongCNN, build_model, count_parameters, fixed_half,
                     generator_fakes, load_agiri, load_cifake, load_cifar100, normalise, parse_cifar10_class,
                     single_view)
from training import split_train_val
from project import REPO_ROOT, ProjectError


REAL_CIFAKE = REPO_ROOT / "data" / "CIFAKE"


# -- CIFAKE --------------------------------------------------------------------------------------

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


def test_validation_split_is_stratified_and_disjoint(sample_root):
    data = load_cifake(sample_root / "CIFAKE", "train", verbose=False)
    train, val = split_train_val(data, 0.1, seed=0)
    assert len(val) == 200 and len(train) == 1800 and not set(train.sources) & set(val.sources)
    assert (val.labels == 1).sum() == 100 and val.classes.bincount().tolist() == [20] * 10
    assert split_train_val(data, 0.1, seed=0)[1].sources == val.sources


# -- CIFAR-100 and AGIRI -------------------------------------------------------------------------

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


def test_subset_keeps_every_field_aligned(sample_root):
    data = load_agiri(sample_root / "ai-generated-images-vs-real-images", preprocess="multi_crop")
    part = data.subset([2, 5])
    assert part.sources == [data.sources[2], data.sources[5]]
    assert torch.equal(part.images[9:], data.images[45:54]) and part.labels.tolist() == data.labels[[2, 5]].tolist()


# -- The batcher ---------------------------------------------------------------------------------

def small_set(n=10):
    images = torch.arange(n, dtype=torch.uint8).repeat_interleave(3 * 32 * 32).reshape(n, 3, 32, 32)
    return images, torch.arange(n) % 2


def test_batcher_in_order_for_evaluation_keeps_last_partial_batch():
    images, labels = small_set(10)
    batches = list(Batcher(images, labels, batch_size=4))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    first = batches[0][0]
    assert first.dtype == torch.float32 and first.min() == -1.0 and first[3, 0, 0, 0] == 3 / 127.5 - 1
    assert torch.cat([y for _, y in batches]).tolist() == (labels.float()).tolist()


def test_batcher_shuffles_deterministically_with_a_new_order_each_epoch():
    images, labels = small_set(50)
    order = lambda b: [int(round((x[:, 0, 0, 0].add(1) * 127.5).item())) for xb, _ in b for x in xb.split(1)]
    a, b = Batcher(images, labels, 8, shuffle=True, seed=3), Batcher(images, labels, 8, shuffle=True, seed=3)
    epoch1, epoch2 = order(a), order(a)
    assert epoch1 == order(b) and epoch2 == order(b)                    # same seed, same orders
    assert sorted(epoch1) == list(range(50)) and epoch1 != epoch2      # a permutation, new each epoch
    assert order(Batcher(images, labels, 8, shuffle=True, seed=4)) != epoch1
    for x, y in a:                                                      # images stay with their labels
        assert torch.equal(((x[:, 0, 0, 0] + 1) * 127.5).round() % 2, y)


def test_batcher_flip_mirrors_about_half():
    images = torch.zeros(200, 3, 32, 32, dtype=torch.uint8)
    images[..., 0] = 255                                                # a white left column
    x = torch.cat([xb for xb, _ in Batcher(images, torch.zeros(200), 50, flip=True, seed=0)])
    mirrored = (x[:, 0, 0, -1] == 1).sum().item()
    assert 70 < mirrored < 130 and ((x[:, 0, 0, 0] == 1) ^ (x[:, 0, 0, -1] == 1)).all()


def test_batcher_shift_crops_each_image_at_its_own_offset():
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    k = 2
    shifted = torch.cat([x for x, _ in Batcher(images, torch.zeros(64), 16, shift=k, seed=0)])
    padded = torch.nn.functional.pad(normalise(images), (k, k, k, k), mode="reflect")
    offsets = []
    for image, pad in zip(shifted, padded):
        matches = [(dy, dx) for dy in range(2 * k + 1) for dx in range(2 * k + 1)
                   if torch.equal(image, pad[:, dy:dy + 32, dx:dx + 32])]
        assert len(matches) == 1                       # exactly one crop of the padded image
        offsets.append(matches[0])
    assert len(set(offsets)) > 10                      # offsets drawn per image, not per batch
    again = torch.cat([x for x, _ in Batcher(images, torch.zeros(64), 16, shift=k, seed=0)])
    assert torch.equal(shifted, again)                 # seeded


# -- Networks ------------------------------------------------------------------------------------

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


@pytest.mark.parametrize("kwargs", [{}, {"widths": (32, 64, 96)}, {"widths": (8, 16, 24), "test_shift": 1}])
def test_strong_architecture_shape_and_size(kwargs, tmp_path):
    model = StrongCNN(**kwargs).eval()
    x = torch.randn(4, 3, 32, 32)
    assert model(x).shape == (4,) and count_parameters(model) <= 300_000
    assert isinstance(build_model("strong"), StrongCNN)
    save_model(model, tmp_path / "s.pth")                      # the shape is rebuilt from the checkpoint
    loaded, _ = load_model(tmp_path / "s.pth")
    assert loaded.config == model.config and torch.equal(loaded(x), model(x))


def test_test_flip_averages_the_image_and_its_mirror_in_eval_mode_only(tmp_path):
    torch.manual_seed(0)
    model, x = StrongCNN(test_flip=True), torch.randn(4, 3, 32, 32)
    model.train()
    assert torch.equal(model(x), model.logit(x))              # training sees each image as it is
    model.eval()
    assert torch.allclose(model(x), (model.logit(x) + model.logit(x.flip(3))) / 2)
    assert torch.allclose(model(x), model(x.flip(3)), atol=1e-6)
    save_model(model, tmp_path / "s.pth")
    assert load_model(tmp_path / "s.pth")[0].test_flip is True


def test_test_shift_averages_one_pixel_shifts_and_their_mirrors(tmp_path):
    torch.manual_seed(0)
    model, x = StrongCNN(test_flip=True, test_shift=1).eval(), torch.randn(4, 3, 32, 32)
    views = model.views(x)
    assert len(views) == 10 and all(v.shape == x.shape for v in views)
    down = views[1]                                            # moved down one pixel; reflection fills row 0
    assert torch.equal(down[:, :, 1:], x[:, :, :-1]) and torch.equal(down[:, :, 0], x[:, :, 1])
    assert torch.equal(views[5], x.flip(3)) and torch.equal(views[6], down.flip(3))
    assert torch.allclose(model(x), torch.stack([model.logit(v) for v in views]).mean(0), atol=1e-6)
    assert len(StrongCNN(test_shift=1).views(x)) == 5
    with single_view(model):                                   # one view, then both settings come back
        assert torch.equal(model(x), model.logit(x))
    assert (model.test_flip, model.test_shift) == (True, 1)
    save_model(model, tmp_path / "s.pth")
    assert load_model(tmp_path / "s.pth")[0].test_shift == 1


def test_fixed_halves_split_once_and_always_the_same_way(sample_root):
    train, test = fixed_half(101, "train"), fixed_half(101, "test")
    assert len(train) == 50 and len(test) == 51 and not set(train) & set(test)
    assert np.array_equal(train, fixed_half(101, "train"))
    folder = sample_root / "generators32" / "gan-small"
    whole, halves = generator_fakes(folder, "gan-small"), [generator_fakes(folder, "gan-small", p)
                                                             for p in ("train", "test")]
    assert (whole.labels == FAKE).all() and sorted(halves[0].sources + halves[1].sources) == sorted(whole.sources)
    assert not set(halves[0].digests) & set(halves[1].digests)


# -- The real CIFAKE, where it has been unpacked into data/CIFAKE --------------------------------

needs_real_cifake = pytest.mark.skipif(not (REAL_CIFAKE / "train").is_dir(),
                                       reason="real CIFAKE not in data/CIFAKE (run code/get_data.py)")


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
    from evaluate import leaked_test_images
    test, train = load_cifake(REAL_CIFAKE, "test"), load_cifake(REAL_CIFAKE, "train")
    leaked = leaked_test_images(test, train)
    assert leaked.sum() == 378 and (test.labels[torch.from_numpy(leaked)] == FAKE).all()


REAL_CIFAR100, REAL_FACES, REAL_DDPM32, REAL_AGIRI_SUBSET = (REPO_ROOT / "data" / name for name in (
    "CIFAR100", "faces-ddpm-celebahq", "ddpm-cifar10-32", "agiri-subset224"))


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
    from classes import load_fakes
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
