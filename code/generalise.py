"""What might let a detector trained on CIFAKE alone catch generators it never saw: input transforms, train-time
augmentations, fakes made from real images, and a patch-level network. training.py names them in Recipe fields;
classes.py builds every network with an `input` transform, applied inside the network so it holds at test time.

Input transforms map normalised images (float N x 3 x H x W in [-1, 1]) to tensors of the same shape:
    rgb          the image as it is
    gray         luminance (ITU-R BT.601 weights) in all three channels: colour cannot decide
    standardise  each channel of each image to mean 0 and spread 1: global colour and contrast cannot decide
    highpass     the image minus its 2x average-pooled, nearest-upsampled copy (StrongCNN's own residual)
    npr          neighbouring-pixel relations (Tan et al. 2024): the image minus its 2x nearest down-then-up copy
    spectrum     the log-magnitude of each channel's 2-D Fourier transform, centred (Frank et al. 2020)

Fake-makers turn uint8 real images N x 3 x 32 x 32 into "fakes" of the same content, saved as CIFAKE saves (JPEG,
PIL's quality-75 tables), so that only the made traces differ:
    resample     a resampling chain: down to 16-24 px and back up, with a random pair of interpolations
    autoencoder  reconstructions by a small autoencoder trained on the real images, decoder upsampling by nearest
                 neighbour then convolution (as Stable Diffusion's VAE and DDPM's U-Net decode)
    autoencoder_tconv  the same with transposed convolutions (as DCGAN-style generators decode)
"""
import functools
import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from perturb import jpeg, rescale
from project import REPO_ROOT, ProjectError, fast_bfloat16, seed_everything

# ----------------------------------------------------------------------------------------------
# Input transforms

LUMA = (0.299, 0.587, 0.114)


def gray(x):
    luma = (x * x.new_tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return luma.expand_as(x).contiguous()


def standardise(x):
    mean, var = x.mean((2, 3), keepdim=True), x.var((2, 3), keepdim=True, unbiased=False)
    return (x - mean) / (var + 1e-4).sqrt()


def highpass(x):
    return x - F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")


def npr(x):
    return x - F.interpolate(x[:, :, ::2, ::2], scale_factor=2, mode="nearest")


@functools.lru_cache(maxsize=8)
def centred_dft(n, device):
    """The real and imaginary parts of the n-point DFT matrix with its rows in fftshift order (zero frequency in
    the middle): two small matrix products per image side are cheaper here than an FFT per image."""
    k = (torch.arange(n, dtype=torch.float64) - n // 2) % n
    angle = -2 * torch.pi * k[:, None] * torch.arange(n, dtype=torch.float64)[None, :] / n
    return angle.cos().float().to(device), angle.sin().float().to(device)


def spectrum(x):
    with torch.autocast(x.device.type, enabled=False):    # float32 throughout: magnitudes reach 1024
        x = x.float()
        cos_h, sin_h = centred_dft(x.shape[-2], x.device)
        cos_w, sin_w = centred_dft(x.shape[-1], x.device)
        real_part, imaginary_part = cos_h @ x, sin_h @ x                    # along the rows, then the columns
        real = real_part @ cos_w.T - imaginary_part @ sin_w.T
        imaginary = real_part @ sin_w.T + imaginary_part @ cos_w.T
        magnitude = torch.sqrt(real ** 2 + imaginary ** 2)
        return torch.log1p(magnitude) / 4                 # the zero-frequency term of 32 x 32 reaches log(1025) / 4


INPUTS = {"rgb": lambda x: x, "gray": gray, "standardise": standardise, "highpass": highpass, "npr": npr,
          "spectrum": spectrum}


def input_config(input):
    """The `input` entry of a network's config: absent for plain RGB, so older checkpoints keep their keys."""
    if input not in INPUTS:
        raise ProjectError(f"unknown input transform '{input}' (choose from {', '.join(INPUTS)})")
    return {} if input == "rgb" else {"input": input}


# ----------------------------------------------------------------------------------------------
# Train-time augmentations of normalised batches (float N x 3 x H x W in [-1, 1])

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


# ----------------------------------------------------------------------------------------------
# A patch-level network

class PatchCNN(nn.Module):
    """A patch-level detector: four 3 x 3 convolutions at full resolution, so each position's logit sees only a 9 x 9
    patch, averaged over positions: global content cannot decide."""

    def __init__(self, width=32, depth=4, input="rgb"):
        super().__init__()
        self.config = {"arch": "patch", "width": int(width), "depth": int(depth), **input_config(input)}
        self.input = input
        layers, channels = [], 3
        for _ in range(depth):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, x):
        return self.head(self.features(INPUTS[self.input](x))).mean((1, 2, 3))


# ----------------------------------------------------------------------------------------------
# Fake-makers

FAKES_DIR = REPO_ROOT / "data" / ".made_fakes"       # made fakes, kept like the decode cache (ignored by git)
RESAMPLE_SIZES = (16, 20, 24)
RESAMPLE_DOWN = ("nearest", "area", "bilinear", "bicubic")
RESAMPLE_UP = ("nearest", "bilinear", "bicubic")


def as_cifake_jpeg(images):
    """Save and decode as CIFAKE's files were saved (PIL JPEG, quality 75): the container must not tell made fakes."""
    return jpeg(images, 75)


def resample_fakes(images, seed=0, **_):
    """Each image down to a random size of RESAMPLE_SIZES and back, with a random pair of interpolations."""
    rng = np.random.default_rng(seed)
    choice = np.stack([rng.integers(0, len(options), len(images))
                       for options in (RESAMPLE_SIZES, RESAMPLE_DOWN, RESAMPLE_UP)], 1)
    out = torch.empty_like(images)
    for size, down, up in np.unique(choice, axis=0):
        rows = torch.from_numpy(np.flatnonzero((choice == (size, down, up)).all(1)))
        out[rows] = rescale(images[rows], RESAMPLE_SIZES[size], RESAMPLE_DOWN[down], RESAMPLE_UP[up])
    return as_cifake_jpeg(out)


class Autoencoder(nn.Module):
    """32 x 32 -> 8 x 8 x 16 -> 32 x 32: strided convolutions down, and two 2x upsamplings like a generator's decoder
    ('nearest': nearest neighbour then a 3 x 3 convolution; 'transposed': a 4 x 4 transposed convolution), each
    halving the channels."""

    def __init__(self, decoder="nearest", width=64, latent=16):
        super().__init__()
        up = ((lambda c_in, c_out: nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                 nn.Conv2d(c_in, c_out, 3, padding=1)))
              if decoder == "nearest" else (lambda c_in, c_out: nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)))
        self.encode = nn.Sequential(nn.Conv2d(3, width // 2, 4, 2, 1), nn.ReLU(), nn.Conv2d(width // 2, width, 4, 2, 1),
                                    nn.ReLU(), nn.Conv2d(width, latent, 1))
        self.decode = nn.Sequential(nn.Conv2d(latent, width, 3, padding=1), nn.ReLU(), up(width, width // 2), nn.ReLU(),
                                    up(width // 2, width // 4), nn.ReLU(), nn.Conv2d(width // 4, 3, 3, padding=1),
                                    nn.Tanh())

    def forward(self, x):
        return self.decode(self.encode(x))


AUTOENCODER = dict(epochs=3, batch_size=256, lr=2e-3)     # AdamW, one-cycle, L1 loss; bfloat16 where fast


def train_autoencoder(images, decoder="nearest", seed=0, device="cpu", progress=True):
    """An Autoencoder trained to rebuild uint8 `images` (AUTOENCODER), in eval mode."""
    seed_everything(seed)
    epochs, batch_size, lr = AUTOENCODER["epochs"], AUTOENCODER["batch_size"], AUTOENCODER["lr"]
    device = torch.device(device)
    model = Autoencoder(decoder).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=epochs * -(-len(images) // batch_size))
    generator, bf16 = torch.Generator().manual_seed(seed), fast_bfloat16(device)
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in tqdm(range(0, len(images), batch_size), leave=False, disable=not progress,
                          desc=f"autoencoder {epoch + 1}/{epochs}"):
            x = images[order[start:start + batch_size]].to(device).float().div_(127.5).sub_(1)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                loss = (model(x).float() - x).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


@torch.inference_mode()
def reconstruct(model, images, device="cpu", batch_size=2048):
    """The model's uint8 rebuild of uint8 `images`."""
    rebuilt = [model(images[start:start + batch_size].to(device).float().div_(127.5).sub_(1)).add(1).mul(127.5)
               for start in range(0, len(images), batch_size)]
    return torch.cat(rebuilt).round().clamp(0, 255).to(torch.uint8).cpu()


def autoencoder_fakes(images, seed=0, decoder="nearest", device="cpu", progress=True):
    """Reconstructions of `images` by an Autoencoder trained on them, saved as CIFAKE saves."""
    return as_cifake_jpeg(reconstruct(train_autoencoder(images, decoder, seed, device, progress), images, device))


FAKE_MAKERS = {"resample": resample_fakes, "autoencoder": autoencoder_fakes,
               "autoencoder_tconv": lambda images, **kw: autoencoder_fakes(images, decoder="transposed", **kw)}


def make_fakes(maker, images, seed=0, device="cpu", folder=FAKES_DIR, progress=True):
    """FAKE_MAKERS[maker] applied to uint8 real images, kept on disk under the maker, its settings, the seed and the
    images' contents: a second run with the same real images reads them back."""
    settings = (RESAMPLE_SIZES, RESAMPLE_DOWN, RESAMPLE_UP) if maker == "resample" else AUTOENCODER
    key = hashlib.sha1(images.numpy().tobytes() + repr(settings).encode()).hexdigest()[:16]
    path = Path(folder) / f"{maker}-seed{seed}-{key}.npy"
    if path.is_file():
        return torch.from_numpy(np.load(path))
    made = FAKE_MAKERS[maker](images, seed=seed, device=device, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, made.numpy())
    return made
