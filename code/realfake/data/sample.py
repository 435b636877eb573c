"""Generate small sample datasets in the exact on-disk formats of CIFAKE, CIFAR-100 and AGIRI.

The sample lets every script, notebook and test run without the real data. It is a STAND-IN:
- "real" images are crops of real photographs that ship with installed packages (scikit-learn's
  china.jpg and flower.jpg, matplotlib's grace_hopper.jpg);
- "fake" images are NOT AI-generated: they are real crops re-rendered through a fixed, seeded
  2x downsample + transposed-convolution upsampler, which leaves the periodic upsampling traces that
  generator outputs are known for. A detector can learn them; nothing learnt here says anything
  about real AI-generated images.
CIFAKE content classes in the sample are assigned round-robin, so they carry no meaning.

Its command: `python code/make_sample_data.py` (--help lists the flags).
"""
import io
import pickle
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from realfake.project import STAND_IN_NOTE, config_path

# CIFAR-100's 20 coarse classes, each with its 5 fine classes (the fine label index is the position
# of the name in the sorted list of all 100, as in the real `meta` file).
CIFAR100_COARSE = {
    "aquatic_mammals": ["beaver", "dolphin", "otter", "seal", "whale"],
    "fish": ["aquarium_fish", "flatfish", "ray", "shark", "trout"],
    "flowers": ["orchid", "poppy", "rose", "sunflower", "tulip"],
    "food_containers": ["bottle", "bowl", "can", "cup", "plate"],
    "fruit_and_vegetables": ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
    "household_electrical_devices": ["clock", "keyboard", "lamp", "telephone", "television"],
    "household_furniture": ["bed", "chair", "couch", "table", "wardrobe"],
    "insects": ["bee", "beetle", "butterfly", "caterpillar", "cockroach"],
    "large_carnivores": ["bear", "leopard", "lion", "tiger", "wolf"],
    "large_man-made_outdoor_things": ["bridge", "castle", "house", "road", "skyscraper"],
    "large_natural_outdoor_scenes": ["cloud", "forest", "mountain", "plain", "sea"],
    "large_omnivores_and_herbivores": ["camel", "cattle", "chimpanzee", "elephant", "kangaroo"],
    "medium_mammals": ["fox", "porcupine", "possum", "raccoon", "skunk"],
    "non-insect_invertebrates": ["crab", "lobster", "snail", "spider", "worm"],
    "people": ["baby", "boy", "girl", "man", "woman"],
    "reptiles": ["crocodile", "dinosaur", "lizard", "snake", "turtle"],
    "small_mammals": ["hamster", "mouse", "rabbit", "shrew", "squirrel"],
    "trees": ["maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"],
    "vehicles_1": ["bicycle", "bus", "motorcycle", "pickup_truck", "train"],
    "vehicles_2": ["lawn_mower", "rocket", "streetcar", "tank", "tractor"],
}


def source_photos():
    """The real photographs that ship with scikit-learn and matplotlib, as RGB arrays."""
    from matplotlib import cbook
    from sklearn.datasets import load_sample_images
    photos = list(load_sample_images().images)
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        photos.append(np.asarray(Image.open(f).convert("RGB")))
    return photos


def real_crop(rng, photos, size=32, max_region=160):
    """A random square region of a random photo (a random horizontal flip), resized to size x size."""
    photo = photos[rng.integers(len(photos))]
    h, w = photo.shape[:2]
    region = int(rng.integers(min(size, max_region), min(max_region, h, w) + 1))
    y, x = rng.integers(0, h - region + 1), rng.integers(0, w - region + 1)
    img = Image.fromarray(photo[y:y + region, x:x + region])
    if region != size:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img)[:, ::-1] if rng.random() < 0.5 else np.asarray(img)


def upsampler_kernel(seed=1234):
    """The stand-in generator's fixed 4x4 transposed-convolution kernel: bilinear plus a seeded
    perturbation, so the four output phases get slightly different gains (a checkerboard trace)."""
    g = torch.Generator().manual_seed(seed)
    bilinear = torch.tensor([0.25, 0.75, 0.75, 0.25])
    kernel = bilinear[:, None] * bilinear[None, :] + 0.12 * torch.randn(4, 4, generator=g)
    return kernel.expand(3, 1, 4, 4).clone()


def stand_in_fake(rgb, kernel=None):
    """Re-render RGB uint8 images (H x W x 3 or N x H x W x 3, even sides) the way an upsampling
    generator would: 2x average downsample, then a 2x transposed convolution with a fixed kernel."""
    kernel = upsampler_kernel() if kernel is None else kernel
    x = torch.from_numpy(np.array(rgb, dtype=np.float32))
    x = (x[None] if x.ndim == 3 else x).permute(0, 3, 1, 2)
    up = F.conv_transpose2d(F.avg_pool2d(x, 2), kernel, stride=2, padding=1, groups=3)
    out = up.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()
    return out[0] if np.ndim(rgb) == 3 else out


def jpeg_bytes(rgb, quality=95):
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def cifake_name(i):
    """CIFAKE's file naming: image i of content class k (1..10) is 'N.jpg' for k = 1, else 'N (k).jpg'."""
    n, k = divmod(i, 10)
    return f"{n}.jpg" if k == 0 else f"{n} ({k + 1}).jpg"


def make_cifake(root, rng, photos, n_train, n_test):
    kernel = upsampler_kernel()
    for split, n in (("train", n_train), ("test", n_test)):
        for folder in ("REAL", "FAKE"):
            out = Path(root) / split / folder
            out.mkdir(parents=True, exist_ok=True)
            crops = np.stack([real_crop(rng, photos) for _ in range(n)])
            images = crops if folder == "REAL" else stand_in_fake(crops, kernel)
            for i, image in enumerate(images):
                (out / cifake_name(i)).write_bytes(jpeg_bytes(image))


def make_cifar100(root, rng, photos, per_class_train, per_class_test):
    fine_names = sorted(n for names in CIFAR100_COARSE.values() for n in names)
    coarse_names = list(CIFAR100_COARSE)
    coarse_of = {n: c for c, names in enumerate(CIFAR100_COARSE.values()) for n in names}
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for split, per_class in (("train", per_class_train), ("test", per_class_test)):
        fine = [f for f in range(100) for _ in range(per_class)]
        rows = [real_crop(rng, photos).transpose(2, 0, 1).reshape(-1) for _ in fine]   # R, G, B planes
        table = {b"filenames": [f"sample_{split}_{i:05d}.png".encode() for i in range(len(fine))],
                 b"batch_label": f"{split}ing batch 1 of 1 (sample stand-in)".encode(),
                 b"fine_labels": fine, b"coarse_labels": [coarse_of[fine_names[f]] for f in fine],
                 b"data": np.stack(rows).astype(np.uint8)}
        (root / split).write_bytes(pickle.dumps(table))
    meta = {b"fine_label_names": [n.encode() for n in fine_names],
            b"coarse_label_names": [n.encode() for n in coarse_names]}
    (root / "meta").write_bytes(pickle.dumps(meta))
    (root / "file.txt~").write_text("a stray file, as in the Kaggle copy\n")


def make_agiri(root, rng, photos, n_per_class=24):
    """AGIRI-format test/{fake,real}: assorted sizes, modes and formats, plus four bad files."""
    kernel = upsampler_kernel()
    variants = [  # (mode, format, extension)
        ("RGB", "JPEG", "jpg"), ("RGB", "PNG", "png"), ("RGB", "WEBP", "webp"), ("L", "JPEG", "jpg"),
        ("LA", "PNG", "png"), ("P", "PNG", "png"), ("RGBA", "PNG", "png"), ("RGBA", "WEBP", "webp"),
        ("CMYK", "JPEG", "jpg"), ("I;16", "PNG", "png"), ("RGB", "JPEG", "jpg"), ("RGB", "JPEG", "jpg")]
    sizes = [24, 40, 64, 96, 128, 200, 256, 320, 400]
    for folder in ("real", "fake"):
        out = Path(root) / "test" / folder
        out.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            mode, fmt, ext = variants[i % len(variants)]
            side = sizes[int(rng.integers(len(sizes)))] // 2 * 2
            rgb = real_crop(rng, photos, size=side, max_region=400)
            if folder == "fake":
                rgb = stand_in_fake(rgb, kernel)
            if i == 0:                            # one large image, as AGIRI has many
                rgb = np.asarray(Image.fromarray(rgb).resize((1200, 800), Image.Resampling.BICUBIC))
            img = Image.fromarray(rgb)
            if mode == "I;16":
                img = Image.fromarray(np.asarray(img.convert("L")).astype(np.uint16) * 257)   # 16-bit greyscale
            elif mode in ("LA", "RGBA"):
                img = img.convert(mode)
                img.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, img.width, dtype=np.uint8), (img.height, 1))))
            elif mode == "P":
                img = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
            elif mode != "RGB":
                img = img.convert(mode)
            name = out / f"{folder}_{i:03d}_{mode.replace(';', '')}.{ext}"
            exif = None
            if i % len(variants) == 10:           # a JPEG that must be rotated by its EXIF orientation
                exif = Image.Exif()
                exif[0x0112] = 6
            img.save(name, fmt, **({"exif": exif} if exif else {}), **({"quality": 92} if fmt != "PNG" else {}))
    bad = Path(root) / "test" / "fake"
    whole = jpeg_bytes(real_crop(rng, photos, size=64))
    (bad / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (bad / "corrupt.jpg").write_bytes(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    (bad / "empty.png").write_bytes(b"")
    (bad / "readme.txt").write_text("not an image\n")


def make_faces(root, rng, photos, n_real=40, n_fake=8, side=64):
    """The faces stand-in's format, test/{fake,real}/*.jpg: larger square JPEGs, few fakes beside many reals."""
    kernel = upsampler_kernel()
    for folder, n in (("real", n_real), ("fake", n_fake)):
        out = Path(root) / "test" / folder
        out.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rgb = real_crop(rng, photos, size=side, max_region=400)
            (out / f"{i:04d}.jpg").write_bytes(jpeg_bytes(stand_in_fake(rgb, kernel) if folder == "fake" else rgb, 75))


def make_agiri_subset(root, rng, photos, n_real=20, n_fake=24, side=56):
    """The AGIRI train subset's format, {fake,real}/tristan_*: square re-saved images, the reals all JPEG at quality
    75, the fakes JPEG and PNG in turn (the format tells some fakes, as in the real subset)."""
    kernel = upsampler_kernel()
    for folder, n in (("real", n_real), ("fake", n_fake)):
        out = Path(root) / folder
        out.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rgb = real_crop(rng, photos, size=side, max_region=400)
            if folder == "fake":
                rgb = stand_in_fake(rgb, kernel)
                if i % 2:
                    Image.fromarray(rgb).save(out / f"tristan_fake_{i}.png")
                    continue
            (out / f"tristan_{folder}_{i}.jpg").write_bytes(jpeg_bytes(rgb, 75))


def make_fakes_only(root, rng, photos, n=20):
    """The DDPM-32 set's format, fake/*.jpg: 32 x 32 generated images and no real side."""
    out = Path(root) / "fake"
    out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(stand_in_fake(np.stack([real_crop(rng, photos) for _ in range(n)]))):
        (out / f"sample{i}.jpg").write_bytes(jpeg_bytes(image, 75))


def make_generators32(root, rng, photos, sizes=(("ddpm-retrained", 40), ("gan-small", 20), ("gan-mix", 16),
                                                ("glow", 16), ("pixelcnnpp", 16))):
    """The development generators' format, NAME/fake/*.jpg (CIFAKE's JPEG tables): stand-ins with upsamplers of
    other kernels than the sample CIFAKE's, so that telling them apart is a transfer, not the training task."""
    for k, (name, n) in enumerate(sizes):
        out = Path(root) / name / "fake"
        out.mkdir(parents=True, exist_ok=True)
        kernel = upsampler_kernel(seed=99 + k)
        for i, image in enumerate(stand_in_fake(np.stack([real_crop(rng, photos) for _ in range(n)]), kernel)):
            (out / f"{i:05d}.jpg").write_bytes(jpeg_bytes(image, 75))


def make_reals_photos(root, rng, photos, sources=(("camera", 16), ("scans", 14))):
    """The real photographs' format, <source>/*: real images of many sizes (48-160 px a side, not square), JPEG at
    several qualities and PNG, one folder per source."""
    for k, (name, n) in enumerate(sources):
        out = Path(root) / name
        out.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            width, height = (int(v) for v in rng.integers(48, 161, size=2))
            rgb = np.asarray(Image.fromarray(real_crop(rng, photos, size=max(width, height), max_region=400))
                             .resize((width, height), Image.Resampling.BILINEAR))
            if k and i % 2:
                Image.fromarray(rgb).save(out / f"{name}_{i}.png")
            else:
                (out / f"{name}_{i}.jpg").write_bytes(jpeg_bytes(rgb, int(rng.integers(70, 96))))


def make_sample_data(root=None, seed=0, n_train=1000, n_test=200, cifar100_per_class=(5, 3), agiri_per_class=24):
    """Write the sample datasets under `root` (default: config.json's sample_dir), each in the format of its
    real counterpart's folder; returns root."""
    root = Path(root) if root is not None else config_path("sample_dir")
    folders = {key: config_path(key).name for key in ("CIFAKE_dir", "CIFAR100_dir", "AGIRI_dir", "agiri_subset_dir",
                                                        "faces_dir", "ddpm32_dir", "generators32_dir",
                                                        "reals_photos_dir")}
    for name in folders.values():
        shutil.rmtree(root / name, ignore_errors=True)          # regenerate from scratch, no stale files
    rng = np.random.default_rng(seed)
    photos = source_photos()
    make_cifake(root / folders["CIFAKE_dir"], rng, photos, n_train, n_test)
    make_cifar100(root / folders["CIFAR100_dir"], rng, photos, *cifar100_per_class)
    make_agiri(root / folders["AGIRI_dir"], rng, photos, agiri_per_class)
    make_faces(root / folders["faces_dir"], rng, photos)
    make_agiri_subset(root / folders["agiri_subset_dir"], rng, photos)
    make_fakes_only(root / folders["ddpm32_dir"], rng, photos)
    make_generators32(root / folders["generators32_dir"], rng, photos)
    make_reals_photos(root / folders["reals_photos_dir"], rng, photos)
    (root / "README.md").write_text(f"# Generated sample data\n\n{STAND_IN_NOTE}.\n"
                                    f"Made by `python code/make_sample_data.py --seed {seed}`.\n")
    return root
