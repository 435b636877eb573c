"""data/imagefiles.py: any image file to 32 x 32 RGB, and the decode cache."""
import io
import shutil

import numpy as np
import torch
from PIL import Image

from classes import load_cifake
from realfake.data import imagefiles
from realfake.data.datasets import AGIRI_MAX_PIXELS
from realfake.data.imagefiles import to_rgb


def png_bytes(img):
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


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
    fast = imagefiles.decode_image(buffer.getvalue(), "resize")[0].astype(int)
    full = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").resize((32, 32), Image.BILINEAR))
    assert fast.shape == (32, 32, 3) and np.abs(fast - full).mean() < 4


def test_decompression_bomb_guard_is_raised_only_inside_the_loader():
    before = Image.MAX_IMAGE_PIXELS
    imagefiles.decode_files([], max_pixels=AGIRI_MAX_PIXELS)
    assert Image.MAX_IMAGE_PIXELS == before


def test_cache_is_used_then_rebuilt_when_a_file_changes(sample_root, tmp_path, monkeypatch):
    root = tmp_path / "CIFAKE"
    shutil.copytree(sample_root / "CIFAKE" / "test", root / "test")
    calls = []
    decode = imagefiles.decode_files
    monkeypatch.setattr(imagefiles, "decode_files", lambda *a, **k: calls.append(1) or decode(*a, **k))
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
    root = tmp_path / "CIFAKE"
    shutil.copytree(sample_root / "CIFAKE" / "test", root / "test")
    first = load_cifake(root, "test")
    for f in (root / ".cache").iterdir():
        f.write_bytes(b"garbage")
    assert torch.equal(load_cifake(root, "test").images, first.images)
