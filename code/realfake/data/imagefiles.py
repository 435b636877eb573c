"""Image files to 32 x 32 RGB arrays: decoding any mode and format, in parallel, with a cache on disk.

`decode_files` reads a list of files on all cores; a file that fails is reported with its reason and skips only
itself. `decode_folder` adds a cache: the decoded arrays of a file list are kept in `<dataset>/.cache/` and
reused while no file's name, size or modification time has changed (about 40x faster than decoding CIFAKE).
"""
import hashlib
import io
import os
import stat
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from realfake.project import ProjectError, atomic_write_bytes

IMAGE_SIZE = 32
PREPROCESSINGS = ("resize", "center_crop", "multi_crop")   # what the 32 x 32 models can be given
FULL_SIZE = 224                         # "full": the pretrained backbone's input, short side scaled, centre crop
FULL_SIZE_DECODINGS = ("full", "native")  # "native": the centre 224 px crop at the file's own resolution
DECODINGS = PREPROCESSINGS + FULL_SIZE_DECODINGS
MULTI_CROP_GRID = 3                     # multi_crop takes a 3 x 3 grid of native-resolution crops
CACHE_FOLDER = ".cache"                 # the decode cache's folder in a dataset's root
CACHE_VERSION = 1                       # bump when decoding changes, so old caches are rebuilt


# ----------------------------------------------------------------------------------------------
# One file

def to_rgb(img):
    """Any PIL image as 8-bit RGB: EXIF rotation applied, alpha composited on white, palettes
    expanded, 16/32-bit and float greyscale scaled to 0..255, CMYK converted."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        values = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16") or values.max(initial=0) > 255:
            values = values / 257.0                  # 16-bit range onto 8 bits
        img = Image.fromarray(np.clip(values.round(), 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert("RGB") if img.mode != "RGB" else img


def _native_crops(img, grid):
    """A grid x grid set of 32 x 32 crops at native resolution, evenly spaced (grid=1: the centre)."""
    if min(img.size) < IMAGE_SIZE:                   # too small to crop: scale the short side up to 32
        scale = IMAGE_SIZE / min(img.size)
        img = img.resize((max(IMAGE_SIZE, round(img.width * scale)),
                          max(IMAGE_SIZE, round(img.height * scale))), Image.Resampling.BILINEAR)
    w, h = img.size
    steps = lambda extent: [round((extent - IMAGE_SIZE) * (i + 1) / (grid + 1)) for i in range(grid)]
    return [np.asarray(img.crop((x, y, x + IMAGE_SIZE, y + IMAGE_SIZE)))
            for y in steps(h) for x in steps(w)]


def decode_image(data, preprocess="resize"):
    """Encoded image bytes -> uint8 array K x 32 x 32 x 3 (K = 1, or 9 for multi_crop; "full": 1 x 224 x 224 x 3).

    resize: the whole image squashed to 32 x 32 (as the original study did); big JPEGs are decoded
    at a reduced DCT scale (PIL draft mode), which is both fast and a proper low-pass.
    center_crop / multi_crop: 32 x 32 crops at native resolution, keeping pixel-level traces."""
    img = Image.open(io.BytesIO(data))
    if preprocess == "resize":
        if img.format == "JPEG" and min(img.size) > 2 * IMAGE_SIZE:
            img.draft(img.mode, (IMAGE_SIZE, IMAGE_SIZE))
        img = to_rgb(img)
        if img.size != (IMAGE_SIZE, IMAGE_SIZE):
            img = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
        return np.asarray(img)[None]
    if preprocess in ("center_crop", "multi_crop"):
        return np.stack(_native_crops(to_rgb(img), 1 if preprocess == "center_crop" else MULTI_CROP_GRID))
    if preprocess in FULL_SIZE_DECODINGS:
        return full_size(img, native=preprocess == "native")[None]
    raise ValueError(f"unknown preprocessing '{preprocess}' (choose from {', '.join(DECODINGS)})")


def full_size(img, size=FULL_SIZE, native=False):
    """A PIL image as uint8 size x size x 3: the short side scaled to `size` (antialiased), then the centre crop;
    `native`: the centre crop at the file's own resolution, scaled only when the short side is under `size` (resizing
    a large photograph erases the pixel-level traces a generator leaves, CNNDetection's and NPR's reason to crop)."""
    if img.format == "JPEG" and min(img.size) > 2 * size and not native:
        img.draft(img.mode, (size, size))            # decode big JPEGs at a reduced DCT scale: fast, and a low-pass
    img = to_rgb(img)
    scale = size / min(img.size)
    if scale != 1 and not (native and scale < 1):
        img = img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))),
                         Image.Resampling.BILINEAR)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)))


def crops_per_image(preprocess):
    return MULTI_CROP_GRID ** 2 if preprocess == "multi_crop" else 1


def decoded_side(preprocess):
    return FULL_SIZE if preprocess in FULL_SIZE_DECODINGS else IMAGE_SIZE


def skip_reason(error):
    """A short, stable reason for a file that could not be decoded."""
    if isinstance(error, UnidentifiedImageError):
        return "not an image"
    message = str(error)
    if "truncated" in message or isinstance(error, (EOFError, SyntaxError)):
        return "truncated"
    if isinstance(error, Image.DecompressionBombError):
        return "too large"
    if isinstance(error, (OSError, ValueError)):
        return "corrupt image data"                  # a known format whose decoder gave up
    return f"unreadable ({type(error).__name__})"


@contextmanager
def _max_image_pixels(limit):
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _decode_chunk(paths, preprocess, max_pixels):
    """Decode some files. Returns (crops: n_ok x K x 32 x 32 x 3, ok positions, [(position, reason)], digests,
    stored sizes (width, height; 0 where unreadable))."""
    k = crops_per_image(preprocess)
    crops, ok, failed, digests = [], [], [], np.zeros(len(paths), dtype=np.uint64)
    sizes = np.zeros((len(paths), 2), dtype=np.int64)
    assert not ImageFile.LOAD_TRUNCATED_IMAGES, "truncated files must be reported, not half-decoded"
    with _max_image_pixels(max_pixels), warnings.catch_warnings():
        warnings.simplefilter("ignore")             # PIL's bomb and EXIF warnings: handled above
        for i, path in enumerate(paths):
            try:
                data = Path(path).read_bytes()
            except OSError as e:
                failed.append((i, f"unreadable ({type(e).__name__})"))
                continue
            digests[i] = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")
            if not data:
                failed.append((i, "zero bytes"))
                continue
            try:
                crops.append(decode_image(data, preprocess))
                ok.append(i)
                sizes[i] = Image.open(io.BytesIO(data)).size      # the header again, from memory: cheap
            except Exception as e:                   # any decoder failure skips this file only
                failed.append((i, skip_reason(e)))
    side = decoded_side(preprocess)
    empty = np.zeros((0, k, side, side, 3), np.uint8)
    return (np.stack(crops) if crops else empty), ok, failed, digests, sizes


def decode_files(paths, preprocess="resize", max_pixels=Image.MAX_IMAGE_PIXELS, workers=None,
                 desc="decoding"):
    """Decode image files on all cores. Returns (uint8 tensor n_ok*K x 3 x 32 x 32, ok indices,
    [(index, reason)] for the rest, uint64 digests of every file, every file's stored (width, height)).
    A bad file only skips itself."""
    paths = [str(p) for p in paths]
    workers = workers or os.cpu_count() or 1
    chunk = max(16, min(1024, len(paths) // (8 * workers) + 1))
    starts = range(0, len(paths), chunk)
    args = lambda s: (paths[s:s + chunk], preprocess, max_pixels)
    if workers == 1 or len(paths) <= chunk:
        results = [_decode_chunk(*args(s)) for s in starts]
    else:
        with ProcessPoolExecutor(workers) as pool:
            futures = [pool.submit(_decode_chunk, *args(s)) for s in starts]
            results = [f.result() for f in tqdm(futures, desc=desc, unit="chunk", leave=False)]
    crops, ok, failed, digests, sizes = [], [], [], [], []
    for start, (c, o, f, d, z) in zip(starts, results):
        crops.append(c)
        ok += [start + i for i in o]
        failed += [(start + i, reason) for i, reason in f]
        digests.append(d)
        sizes.append(z)
    side = decoded_side(preprocess)
    crops = np.concatenate(crops) if crops else np.zeros((0, 1, side, side, 3), np.uint8)
    images = torch.from_numpy(crops.reshape(-1, side, side, 3)).permute(0, 3, 1, 2).contiguous()
    return (images, ok, failed, np.concatenate(digests) if digests else np.zeros(0, np.uint64),
            np.concatenate(sizes) if sizes else np.zeros((0, 2), np.int64))


def find_image_files(paths):
    """Every file named, and every file below every folder named (sorted), without repeats; files in the decode
    cache's folders (CACHE_FOLDER) are the project's own, not images."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file()
                            and CACHE_FOLDER not in p.relative_to(path).parts[:-1])
        elif path.is_file():
            found.append(path)
        else:
            raise ProjectError(f"{path}: no such file or folder")
    return list(dict.fromkeys(found))


# ----------------------------------------------------------------------------------------------
# Folders, through the cache

def list_files(folder, rel):
    """All files below `folder` as sorted (path relative to the dataset root, size, mtime_ns).
    Stats names relative to an open directory where the OS allows: ~30% faster on 100k files."""
    use_fd = os.stat in os.supports_dir_fd
    fd = os.open(folder, os.O_RDONLY) if use_fd else None
    try:
        files = []
        for name in sorted(os.listdir(fd if use_fd else folder)):
            st = os.stat(name, dir_fd=fd) if use_fd else os.stat(os.path.join(folder, name))
            if stat.S_ISDIR(st.st_mode):
                files += list_files(os.path.join(folder, name), f"{rel}/{name}")
            else:
                files.append((f"{rel}/{name}", st.st_size, st.st_mtime_ns))
        return files
    finally:
        if use_fd:
            os.close(fd)


def read_cache(folder, key, fingerprint):
    """The cached arrays of `key` if they were built from exactly these files, else None."""
    try:
        with np.load(folder / f"{key}.npz", allow_pickle=False) as z:
            cached = {k: z[k] for k in z.files}
        if str(cached["fingerprint"]) != fingerprint:
            return None
        # memory-mapped copy-on-write: pages come from the OS file cache as they are used
        cached["images"] = np.load(folder / str(cached["images_file"]), mmap_mode="c", allow_pickle=False)
        return cached
    except (OSError, ValueError, KeyError, EOFError):
        return None                                   # missing, stale or damaged: rebuild


def write_cache(folder, key, cached):
    """Images go to their own .npy (fast to read back), named by the fingerprint, then the index .npz
    that points at them: each written atomically, so a crash between the two leaves a stale, unused file."""
    images_file = f"{key}-{str(cached['fingerprint'])[:16]}.npy"
    index = {k: v for k, v in cached.items() if k != "images"}
    try:
        for old in folder.glob(f"{key}-*.npy"):
            old.unlink()
        buffer = io.BytesIO()
        np.save(buffer, cached["images"])
        atomic_write_bytes(folder / images_file, buffer.getvalue())
        buffer = io.BytesIO()
        np.savez(buffer, images_file=np.array(images_file), **index)
        atomic_write_bytes(folder / f"{key}.npz", buffer.getvalue())
    except OSError as e:
        print(f"note: could not write the decode cache in {folder} ({e}); the next load decodes again")


def decode_folder(root, files, preprocess, max_pixels, cache_key=None, desc="decoding"):
    """Decode `files` (paths relative to `root`, as listed by `list_files`: (path, size, mtime_ns)) through the
    cache `root/.cache/<cache_key>` (no cache when cache_key is None). Returns a dict of arrays: images (n_ok*K x
    3 x 32 x 32), ok (indices of decoded files), failed and reasons (the others), digests (of every file)."""
    root = Path(root)
    fingerprint = hashlib.sha1("\n".join([f"{CACHE_VERSION} {preprocess}"] +
                                         [f"{r}\t{s}\t{m}" for r, s, m in files]).encode()).hexdigest()
    cached = read_cache(root / CACHE_FOLDER, cache_key, fingerprint) if cache_key else None
    if cached is None:
        paths = [root / rel for rel, _, _ in files]
        images, ok, failed, digests, _ = decode_files(paths, preprocess, max_pixels, desc=desc)
        cached = dict(fingerprint=np.array(fingerprint), images=images.numpy(), ok=np.array(ok, dtype=np.int64),
                      digests=digests, failed=np.array([i for i, _ in failed], dtype=np.int64),
                      reasons=np.array([r for _, r in failed], dtype=str))
        if cache_key:
            write_cache(root / CACHE_FOLDER, cache_key, cached)
    return cached
