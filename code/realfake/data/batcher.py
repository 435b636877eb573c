"""Batching for training and evaluation: the whole split lives on the device, normalised once; batches are slices
of a seeded permutation (no DataLoader), with optional mirror flips and pixel shifts."""

import torch
import torch.nn.functional as F

from realfake.data.inputs import normalise


class Batcher:
    """Yields (images, labels) batches of a split held on `device`.

    shuffle=True draws a new order each epoch from a seeded generator (the last partial batch is kept);
    shuffle=False goes in order, for evaluation. flip=True mirrors a random half of each batch; shift=K moves
    each image by its own random offset of up to K pixels in each direction (reflection fills the border), which
    keeps pixel-level traces intact while the network sees them at new positions."""

    def __init__(self, images, labels, batch_size, device="cpu", shuffle=False, seed=0, flip=False, shift=0):
        self.images = normalise(images.to(device))
        self.labels = labels.to(device, torch.float32)
        self.batch_size, self.shuffle, self.flip, self.shift = batch_size, shuffle, flip, shift
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self):
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator).to(self.images.device) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:                         # in order: batches are views, no copy
                x, y = self.images[start:start + self.batch_size], self.labels[start:start + self.batch_size]
            else:                                     # gather one batch at a time: cheaper than permuting all
                index = order[start:start + self.batch_size]
                x, y = self.images.index_select(0, index), self.labels.index_select(0, index)
            if self.flip:
                mirror = (torch.rand(len(x), generator=self.generator) < 0.5).to(x.device)
                x = torch.where(mirror[:, None, None, None], x.flip(3), x)
            if self.shift:
                x = self.translate(x)
            yield x, y

    def translate(self, x):
        """Crop each image of the reflection-padded batch at its own random offset."""
        k, (n, _, h, w) = self.shift, x.shape
        padded = F.pad(x, (k, k, k, k), mode="reflect")
        dy, dx = (torch.randint(0, 2 * k + 1, (2, n, 1), generator=self.generator)).to(x.device)
        rows = (dy + torch.arange(h, device=x.device))[:, None, :, None]       # n x 1 x h x 1
        cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]       # n x 1 x 1 x w
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        return padded[batch, channel, rows, cols]
