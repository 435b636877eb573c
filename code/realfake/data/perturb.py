"""Image perturbations a detector meets in the wild (re-compression, resizing, blur, noise), the train-time
augmentations drawn from them, and two augmentations of the transfer study: colour jitter and patch shuffling."""
import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.functional import gaussian_blur

from realfake.data.inputs import gray


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


# ----------------------------------------------------------------------------------------------
# The transfer study's augmentations of normalised batches (float N x 3 x H x W in [-1, 1])


def jitter_colour(x, strength, generator):
    """Per image: brightness shifted by up to `strength`, contrast and saturation scaled by 1 +- `strength`."""
    n = len(x)
    draw = lambda: ((torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * strength).to(x.device)
    brightness, contrast, saturation = draw(), 1 + draw(), 1 + draw()
    mean = x.mean((1, 2, 3), keepdim=True)
    luma = gray(x)
    x = luma + (x - luma) * saturation
    return ((x - mean) * contrast + mean + brightness).clamp(-1, 1)


def shuffle_patches(x, patch, generator):
    """Half of the images (drawn at random) cut into `patch` x `patch` tiles that are put back in a random order, so
    that the layout of the scene cannot decide."""
    n, c, h, w = x.shape
    rows, cols = h // patch, w // patch
    tiles = x.reshape(n, c, rows, patch, cols, patch).permute(0, 2, 4, 1, 3, 5).reshape(n, rows * cols, c, patch, patch)
    order = torch.rand(n, rows * cols, generator=generator).argsort(1)
    keep = torch.rand(n, generator=generator) < 0.5
    order[keep] = torch.arange(rows * cols)
    tiles = tiles.gather(1, order.to(x.device)[:, :, None, None, None].expand_as(tiles))
    return tiles.reshape(n, rows, cols, c, patch, patch).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)
