"""Image perturbations a detector meets in the wild (re-compression, resizing, blur, noise), and the train-time
augmentation built from them. Every function maps uint8 images N x 3 x H x W to the same shape and dtype.

robustness.py measures detectors under these; training.py augments with them; neither imports the other.
"""
import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.functional import gaussian_blur


def jpeg(images, quality):
    """Re-encode each image as a JPEG at `quality` (PIL, 4:2:0 chroma subsampling) and decode it again."""
    out = torch.empty_like(images)
    for i, image in enumerate(images.permute(0, 2, 3, 1).numpy()):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        out[i] = torch.from_numpy(np.array(Image.open(buffer).convert("RGB"))).permute(2, 0, 1)
    return out


def rescale(images, size, down="bilinear", up="bilinear"):
    """Down to size x size with interpolation `down` (antialiased where it interpolates) and back up with `up`."""
    smooth = lambda mode: {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    h, w = images.shape[-2:]
    small = F.interpolate(images.float(), size=(size, size), mode=down, antialias=bool(smooth(down)), **smooth(down))
    back = F.interpolate(small, size=(h, w), mode=up, **smooth(up))
    return back.round().clamp(0, 255).to(torch.uint8)


def blur(images, sigma):
    """Gaussian blur with standard deviation `sigma` pixels (kernel 2 * ceil(3 sigma) + 1)."""
    size = 2 * int(np.ceil(3 * sigma)) + 1
    return gaussian_blur(images.float(), [size, size], [sigma, sigma]).round().clamp(0, 255).to(torch.uint8)


def noise(images, std, seed=0):
    """Additive Gaussian noise of `std` grey levels (0..255 scale), from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    noisy = images.float() + std * torch.randn(images.shape, generator=g)
    return noisy.round().clamp(0, 255).to(torch.uint8)


AUGMENTATIONS = ("blur", "jpeg")


def augment(images, kinds, seed):
    """CNNSpot-style train-time augmentation: each image, with probability 0.5 per kind, is blurred
    (sigma uniform in 0.1..1.5) and/or JPEG re-compressed (quality uniform in 60..95)."""
    rng = np.random.default_rng(seed)
    out = images.clone()
    for kind in kinds:
        chosen = np.flatnonzero(rng.random(len(out)) < 0.5)
        for i, value in zip(chosen, rng.uniform(*((0.1, 1.5) if kind == "blur" else (60, 96)), size=len(chosen))):
            out[i:i + 1] = blur(out[i:i + 1], value) if kind == "blur" else jpeg(out[i:i + 1], int(value))
    return out
