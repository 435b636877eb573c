"""Networks that make images: the project's own generators (a GAN, a VAE and a Glow-style flow, trained on CIFAKE's
reals by training/own_generators.py) and the small autoencoder whose reconstructions are one of the fake-makers
(training/fake_makers.py)."""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


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


LATENT = 64
FLOW_TEMPERATURE = 0.7               # the usual way to draw cleaner samples from a flow (Kingma & Dhariwal 2018)


def to_unit(images):
    return images.float().div(127.5).sub(1)


def to_uint8(x):
    return x.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)


# ----------------------------------------------------------------------------------------------
# The three generators. The VAE and the flow train on loss(uint8 batch, generator), the GAN by train_step; each
# draws sample(n, generator) in [-1, 1].

class GAN(nn.Module):
    def __init__(self, width=32):
        super().__init__()
        w = width
        up = lambda c_in, c_out: [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                                  nn.ReLU(True)]
        down = lambda c_in, c_out: [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                                    nn.LeakyReLU(0.2, True)]
        self.generator = nn.Sequential(nn.ConvTranspose2d(LATENT, 8 * w, 4, 1, 0, bias=False), nn.BatchNorm2d(8 * w),
                                       nn.ReLU(True), *up(8 * w, 4 * w), *up(4 * w, 2 * w),
                                       nn.ConvTranspose2d(2 * w, 3, 4, 2, 1), nn.Tanh())
        self.critic = nn.Sequential(nn.Conv2d(3, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2, True), *down(2 * w, 4 * w),
                                    *down(4 * w, 8 * w), nn.Conv2d(8 * w, 1, 4, 1, 0))

    def generate(self, z):
        return self.generator(z[:, :, None, None])

    def sample(self, n, generator):
        return self.generate(torch.randn(n, LATENT, generator=generator))

    def train_step(self, images_uint8, optimizers, generator):
        """One critic step and one generator step of the non-saturating GAN loss."""
        critic_optimizer, generator_optimizer = optimizers
        fake = self.sample(len(images_uint8), generator)
        critic_loss = (F.softplus(-self.critic(to_unit(images_uint8))).mean()
                       + F.softplus(self.critic(fake.detach())).mean())
        critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        critic_optimizer.step()
        generator_loss = F.softplus(-self.critic(fake)).mean()
        generator_optimizer.zero_grad(set_to_none=True)
        generator_loss.backward()
        generator_optimizer.step()
        return generator_loss


class VAE(nn.Module):
    def __init__(self, width=32):
        super().__init__()
        w = width
        up = lambda c_in, c_out: [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1),
                                  nn.ReLU(True)]
        self.encoder = nn.Sequential(nn.Conv2d(3, w, 4, 2, 1), nn.ReLU(True), nn.Conv2d(w, 2 * w, 4, 2, 1),
                                     nn.ReLU(True), nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.ReLU(True), nn.Flatten(),
                                     nn.Linear(4 * w * 16, 2 * LATENT))
        self.decoder = nn.Sequential(nn.Linear(LATENT, 4 * w * 16), nn.Unflatten(1, (4 * w, 4, 4)),
                                     *up(4 * w, 2 * w), *up(2 * w, w), *up(w, w), nn.Conv2d(w, 3, 3, padding=1),
                                     nn.Tanh())

    def loss(self, images_uint8, generator):
        """The negative evidence lower bound per dimension: squared error at a fixed spread, plus the KL term."""
        x = to_unit(images_uint8)
        mean, log_var = self.encoder(x).chunk(2, 1)
        z = mean + (0.5 * log_var).exp() * torch.randn(mean.shape, generator=generator)
        rebuilt = self.decoder(z)
        kl = 0.5 * (mean ** 2 + log_var.exp() - 1 - log_var).sum(1)
        return (((rebuilt - x) ** 2).sum((1, 2, 3)) / (2 * 0.1 ** 2) + kl).mean() / x[0].numel()

    def sample(self, n, generator):
        return self.decoder(torch.randn(n, LATENT, generator=generator))


class Coupling(nn.Module):
    """An affine coupling: one part of x passes unchanged and sets a scale and shift of the rest. mask "checker"
    keeps the pixels of one parity of a checkerboard; mask "channel" keeps the first (parity 0) or last half of the
    channels."""

    def __init__(self, channels, mask, parity, width):
        super().__init__()
        self.mask, self.parity = mask, parity
        c_in = channels if mask == "checker" else channels // 2
        self.net = nn.Sequential(nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 1),
                                 nn.ReLU(), nn.Conv2d(width, 2 * c_in, 3, padding=1))
        nn.init.zeros_(self.net[-1].weight)                 # each coupling starts as the identity
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x, reverse=False):
        """(y, log-determinant per image); reverse=True inverts."""
        if self.mask == "checker":
            h, w = x.shape[-2:]
            free = ((torch.arange(h)[:, None] + torch.arange(w)[None, :] + self.parity) % 2).to(x)
            kept, rest = x * (1 - free), x
        else:
            kept, rest = x.chunk(2, 1)[::1 if self.parity == 0 else -1]
            free = 1
        log_scale, shift = self.net(kept).chunk(2, 1)
        log_scale, shift = self.scale * torch.tanh(log_scale) * free, shift * free    # zero where kept
        changed = (rest - shift) * torch.exp(-log_scale) if reverse else rest * torch.exp(log_scale) + shift
        if self.mask == "channel":
            changed = torch.cat([kept, changed] if self.parity == 0 else [changed, kept], 1)
        return changed, log_scale.sum((1, 2, 3))


class Flow(nn.Module):
    """Logit space of dequantised images -> N(0, I): three checkerboard couplings at 3 x 32 x 32, a squeeze to
    12 x 16 x 16, three channel couplings and four checkerboard ones."""

    ALPHA = 0.05                    # the logit transform's margin (RealNVP)

    def __init__(self, width=48):
        super().__init__()
        self.before = nn.ModuleList(Coupling(3, "checker", p % 2, width) for p in range(3))
        self.after = nn.ModuleList([Coupling(12, "channel", p % 2, width) for p in range(3)]
                                   + [Coupling(12, "checker", p % 2, width) for p in range(4)])

    def log_likelihood(self, images_uint8, noise=0.5):
        """The log-density per dimension (nats) of each uint8 image dequantised by `noise` in [0, 1) (a tensor of the
        images' shape, or one number: 0.5 is each level's centre), as a density on [0, 1]^D."""
        x = (images_uint8.float() + noise) / 256
        y = self.ALPHA + (1 - 2 * self.ALPHA) * x
        z = torch.logit(y)
        total = (np.log(1 - 2 * self.ALPHA) - torch.log(y) - torch.log1p(-y)).sum((1, 2, 3))   # the logit transform's
        for layer in self.before:
            z, log_det = layer(z)
            total = total + log_det
        z = F.pixel_unshuffle(z, 2)
        for layer in self.after:
            z, log_det = layer(z)
            total = total + log_det
        return (-0.5 * (z ** 2 + np.log(2 * np.pi)).sum((1, 2, 3)) + total) / z[0].numel()

    def loss(self, images_uint8, generator):
        """Bits per dimension of the uniformly dequantised images, on the scale of 256 levels."""
        noise = torch.rand(images_uint8.shape, generator=generator)
        return -self.log_likelihood(images_uint8, noise).mean() / np.log(2) + 8

    def sample(self, n, generator):
        z = FLOW_TEMPERATURE * torch.randn(n, 12, 16, 16, generator=generator)
        for layer in reversed(self.after):
            z, _ = layer(z, reverse=True)
        z = F.pixel_shuffle(z, 2)
        for layer in reversed(self.before):
            z, _ = layer(z, reverse=True)
        x = (torch.sigmoid(z) - self.ALPHA) / (1 - 2 * self.ALPHA)
        return x.clamp(0, 1) * 2 - 1


MODELS = {"gan": GAN, "vae": VAE, "flow": Flow}
