"""What a file's header says, without decoding its pixels: format (by content), extension mismatch, mode, size, JPEG
quality (estimated from the quantisation table), chroma subsampling, EXIF and ICC data, bytes; and which folders of a
dataset hold which class (`find_layout`). The shortcut audit (evaluation/audit.py) and the full-size detector's
format checks read these."""
import functools
import hashlib
import io
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, JpegImagePlugin

from realfake import FAKE, REAL
from realfake.data.imagefiles import list_files, skip_reason
from realfake.project import ProjectError, shown

CLASS_FOLDERS = {"real": REAL, "0_real": REAL, "fake": FAKE, "1_fake": FAKE}
EXTENSIONS = {"JPEG": {".jpg", ".jpeg", ".jpe"}, "PNG": {".png"}, "WEBP": {".webp"}, "GIF": {".gif"},
              "BMP": {".bmp"}, "TIFF": {".tif", ".tiff"}}


# The IJG / JPEG Annex K luminance table (natural order): libjpeg scales it by quality; we invert that to estimate it.
IJG_LUMINANCE = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69,
                          56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104,
                          113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])


IJG_TABLES = np.stack([np.clip((IJG_LUMINANCE * (5000 / q if q < 50 else 200 - 2 * q) + 50) // 100, 1, 255)
                       for q in range(1, 101)])                                    # row q - 1: quality q


def find_layout(root, real=None):
    """[(split, label, folder)] for a dataset folder; one clear error for an unknown layout. `real`: a folder of real
    images from elsewhere, for a dataset of fakes only (the DDPM-32 samples against CIFAKE's test/REAL)."""
    root = Path(root)
    if not root.is_dir():
        raise ProjectError(f"{shown(root)} is not a folder: give the dataset's folder")
    classes = lambda folder: {CLASS_FOLDERS[p.name.lower()]: p for p in sorted(folder.iterdir())
                              if p.is_dir() and p.name.lower() in CLASS_FOLDERS}
    if real is not None:
        if FAKE not in classes(root) or not Path(real).is_dir():
            raise ProjectError(f"with --real, {shown(root)} must hold a fake/ folder and {real} must be a folder")
        return [("all", REAL, Path(real)), ("all", FAKE, classes(root)[FAKE])]
    if len(classes(root)) == 2:
        return [("all", label, folder) for label, folder in sorted(classes(root).items())]
    layout = [(split.name, label, folder) for split in sorted(root.iterdir()) if split.is_dir()
              and len(classes(split)) == 2 for label, folder in sorted(classes(split).items())]
    if not layout:
        raise ProjectError(f"{shown(root)}: expected two class folders (real and fake, any case, or 0_real and "
                           f"1_fake), directly or inside split folders such as train/ and test/")
    return layout


@functools.lru_cache(maxsize=256)                    # datasets reuse a few tables: estimate each once
def jpeg_quality(table):
    """The IJG quality (1-100) whose scaled luminance table is closest to `table` (a tuple in natural order)."""
    return int(np.abs(IJG_TABLES - np.asarray(table)).sum(1).argmin()) + 1


def file_facts(path):
    """Header facts of one file (no pixel decoding), or {"error": reason}."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return {"error": f"unreadable ({type(e).__name__})"}
    facts = {"bytes": len(data), "digest": hashlib.blake2b(data, digest_size=8).hexdigest()}
    if not data:
        return {**facts, "error": "zero bytes"}
    try:
        with Image.open(io.BytesIO(data)) as img:
            facts.update(format=img.format, mode=img.mode, width=img.width, height=img.height,
                         exif=bool(img.getexif()), icc="icc_profile" in img.info, jpeg_quality=-1, qtables="none",
                         subsampling="none")
            if img.format == "JPEG" and img.quantization:
                tables = [np.asarray(img.quantization[k]) for k in sorted(img.quantization)]
                facts.update(jpeg_quality=jpeg_quality(tuple(tables[0])),
                             subsampling=str(JpegImagePlugin.get_sampling(img)),
                             qtables=hashlib.sha1(np.concatenate(tables).astype(np.uint16).tobytes()).hexdigest()[:8])
    except Exception as e:                             # any header a reader rejects skips this file only
        return {**facts, "error": skip_reason(e)}
    suffix = Path(path).suffix.lower()
    facts["extension_mismatch"] = suffix not in EXTENSIONS.get(facts["format"], {suffix})
    facts["bytes_per_pixel"] = facts["bytes"] / (facts["width"] * facts["height"])
    facts["aspect"] = facts["width"] / facts["height"]
    return facts


def _facts_chunk(paths):
    return [file_facts(p) for p in paths]


def read_facts(root, layout, workers=None):
    """One row per file found: split, label, path, and its header facts (errors in `error`)."""
    rows = [{"split": split, "label": label, "file": folder / rel.lstrip("/")}
            for split, label, folder in layout for rel, _, _ in list_files(folder, "")]
    paths = [str(row.pop("file")) for row in rows]
    for row, path in zip(rows, paths):
        inside = Path(path).is_relative_to(root)
        row["path"] = str(Path(path).relative_to(root)) if inside else shown(path)
    return pd.DataFrame([{**row, **f} for row, f in zip(rows, facts_of(paths, workers))])


def facts_of(paths, workers=None):
    """file_facts of every path, on all cores."""
    chunk = max(256, len(paths) // (8 * (workers or os.cpu_count() or 1)) + 1)
    with ProcessPoolExecutor(workers) as pool:
        return [f for part in pool.map(_facts_chunk, [paths[i:i + chunk] for i in range(0, len(paths), chunk)])
                for f in part]
