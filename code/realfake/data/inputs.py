"""What a network sees of an image: `normalise` (uint8 to [-1, 1], as the original study) and the input transforms
that map normalised images (float N x 3 x H x W) to tensors of the same shape. Every network applies its transform
inside itself, so it holds at test time:
    rgb          the image as it is
    gray         luminance (ITU-R BT.601 weights) in all three channels: colour cannot decide
    standardise  each channel of each image to mean 0 and spread 1: global colour and contrast cannot decide
    highpass     the image minus its 2x average-pooled, nearest-upsampled copy (StrongCNN's own residual)
    npr          neighbouring-pixel relations (Tan et al. 2024): the image minus its 2x nearest down-then-up copy
    spectrum     the log-magnitude of each channel's 2-D Fourier transform, centred (Frank et al. 2020)"""
import functools

import torch
import torch.nn.functional as F

from realfake.project import ProjectError


def normalise(images):
    """uint8 0..255 -> float32 in [-1, 1], as the original study's Normalize((0.5,)*3, (0.5,)*3)."""
    return images.float().div_(127.5).sub_(1.0)


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
