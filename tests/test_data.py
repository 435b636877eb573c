"""The data layer: the three on-disk formats, decoding, accounting, the cache and the batcher."""
import io
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import classes
from classes import (FAKE, REAL, Batcher, load_agiri, load_cifake, load_cifar100, normalise,
                     parse_cifar10_class, to_rgb)
from project import REPO_ROOT, ProjectError, config_path

REAL_CIFAKE = REPO_ROOT / "data" / "CIFAKE"


def png_bytes(img):
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


# -- CIFAKE -------------------------------------------------------------------------------------

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


def test_cache_is_used_then_rebuilt_when_a_file_changes(sample_root, tmp_path, monkeypatch):
    import shutil
    root = tmp_path / "CIFAKE"
    shutil.copytree(sample_root / "CIFAKE" / "test", root / "test")
    calls = []
    decode = classes.decode_files
    monkeypatch.setattr(classes, "decode_files", lambda *a, **k: calls.append(1) or decode(*a, **k))
    first = load_cifake(root, "test")
    second = load_cifake(root, "test")
    assert len(calls) == 1 and torch.equal(first.images, second.images)
    assert first.sources == second.sources and np.array_equal(first.digests, second.digests)
    assert not list((root / ".cache").glob("*.tmp"))          # atomic writes leave no temporaries
    changed = root / first.sources[0]
    changed.write_bytes(png_bytes(Image.new("RGB", (32, 32), (255, 0, 0))))
    third = load_cifake(root, "test")
    assert len(calls) == 2 and third.images[0, 0].min() == 255  # the changed file was decoded again
    (root / "test" / "REAL" / "999.jpg").write_bytes(png_bytes(Image.new("RGB", (32, 32))))
    assert len(load_cifake(root, "test")) == len(first) + 1 and len(calls) == 3


def test_damaged_cache_is_rebuilt(sample_root, tmp_path):
    import shutil
    root = tmp_path / "CIFAKE"
    shutil.copytree(sample_root / "CIFAKE" / "test", root / "test")
    first = load_cifake(root, "test")
    for f in (root / ".cache").iterdir():
        f.write_bytes(b"garbage")
    assert torch.equal(load_cifake(root, "test").images, first.images)


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


# -- CIFAR-100 ----------------------------------------------------------------------------------

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


# -- AGIRI and image decoding -------------------------------------------------------------------

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


def test_to_rgb_handles_every_mode():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))                    # fully transparent red
    assert np.asarray(to_rgb(rgba)).tolist()[0][0] == [255, 255, 255]    # composited on white
    half = Image.new("LA", (4, 4), (0, 128))
    assert np.asarray(to_rgb(half))[0, 0].tolist() == [127, 127, 127]
    deep = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))      # 16-bit white
    assert deep.mode.startswith("I;16") and np.asarray(to_rgb(deep))[0, 0].tolist() == [255, 255, 255]
    palette = Image.new("P", (4, 4))
    palette.putpalette([0, 0, 255] + [0] * 765)
    assert np.asarray(to_rgb(palette))[0, 0].tolist() == [0, 0, 255]
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))                  # pure red in CMYK
    assert np.asarray(to_rgb(cmyk))[0, 0].tolist() == [255, 0, 0]
    assert to_rgb(Image.new("L", (4, 4), 9)).mode == "RGB"


def test_exif_rotation_is_applied():
    img = Image.new("RGB", (64, 32), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 32, 32))                           # left half white
    exif = Image.Exif()
    exif[0x0112] = 6                                                      # rotate 90 degrees clockwise
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", exif=exif, quality=95)
    rotated = to_rgb(Image.open(io.BytesIO(buffer.getvalue())))
    assert rotated.size == (32, 64) and np.asarray(rotated)[5, 16].mean() > 200   # white now on top


def test_large_jpeg_resize_matches_a_full_decode():
    rng = np.random.default_rng(0)
    smooth = Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).resize((1500, 1000), Image.BICUBIC)
    buffer = io.BytesIO()
    smooth.save(buffer, "JPEG", quality=95)
    fast = classes.decode_image(buffer.getvalue(), "resize")[0].astype(int)
    full = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").resize((32, 32), Image.BILINEAR))
    assert fast.shape == (32, 32, 3) and np.abs(fast - full).mean() < 4


def test_decompression_bomb_guard_is_raised_only_inside_the_loader():
    before = Image.MAX_IMAGE_PIXELS
    classes.decode_files([], max_pixels=classes.AGIRI_MAX_PIXELS)
    assert Image.MAX_IMAGE_PIXELS == before


# -- Batcher ------------------------------------------------------------------------------------

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


def test_subset_keeps_every_field_aligned(sample_root):
    data = load_agiri(sample_root / "ai-generated-images-vs-real-images", preprocess="multi_crop")
    part = data.subset([2, 5])
    assert part.sources == [data.sources[2], data.sources[5]]
    assert torch.equal(part.images[9:], data.images[45:54]) and part.labels.tolist() == data.labels[[2, 5]].tolist()


# -- Paths --------------------------------------------------------------------------------------

@pytest.mark.parametrize("cwd", [".", "code"])
def test_paths_resolve_the_same_from_root_and_code(cwd):
    script = "import sys; sys.path.insert(0, '{}'); import project; print(project.config_path('CIFAKE_dir'))"
    code_dir = "code" if cwd == "." else "."
    run = subprocess.run([sys.executable, "-c", script.format(code_dir)], cwd=REPO_ROOT / cwd,
                         capture_output=True, text=True, check=True)
    assert Path(run.stdout.strip()) == REPO_ROOT / "data" / "CIFAKE"


def test_bad_config_key_names_the_key():
    with pytest.raises(ProjectError, match="'CIFAKE_dir'"):
        config_path("CIFAKE_dir", {"CIFAKE_dir": 3})
    with pytest.raises(ProjectError, match="'nothing'"):
        config_path("nothing")


# -- The real CIFAKE, where it has been unpacked into data/CIFAKE -----------------------------------

needs_real_cifake = pytest.mark.skipif(not (REAL_CIFAKE / "train").is_dir(),
                                       reason="real CIFAKE not in data/CIFAKE (run code/get_data.py)")


@needs_real_cifake
@pytest.mark.parametrize("split, per_class", [("train", 50_000), ("test", 10_000)])
def test_real_cifake_counts_and_balance(split, per_class):
    data = load_cifake(REAL_CIFAKE, split)
    assert data.images.shape == (2 * per_class, 3, 32, 32) and not data.report.skipped
    assert (data.labels == REAL).sum() == (data.labels == FAKE).sum() == per_class
    for label in (REAL, FAKE):
        counts = data.classes[data.labels == label].bincount(minlength=10)
        assert counts.tolist() == [per_class // 10] * 10


@needs_real_cifake
def test_real_cifake_has_378_test_fakes_leaked_from_train():
    from evaluate import leaked_test_images
    test, train = load_cifake(REAL_CIFAKE, "test"), load_cifake(REAL_CIFAKE, "train")
    leaked = leaked_test_images(test, train)
    assert leaked.sum() == 378 and (test.labels[torch.from_numpy(leaked)] == FAKE).all()


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
