"""The networks beyond the study's own CNN (`classes.CIFAKE_CNN`): `StrongCNN`, the stronger small detector, and
`PatchCNN`, which sees only 9 x 9 patches; `build_model` builds any of them, the full-size `PretrainedDetector`
(backbone.py) too, by the architecture name a checkpoint stores. Each takes an `input` transform (data/inputs.py),
applied inside the network so it holds at test time. P(real) = sigmoid(logit)."""
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

from classes import CIFAKE_CNN
from realfake.data.inputs import INPUTS, highpass, input_config
from realfake.models.backbone import PretrainedDetector
from realfake.project import ProjectError


def conv_bn(c_in, c_out, stride=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """Two 3x3 conv + batch-norm layers with an identity shortcut."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(channels))

    def forward(self, x):
        return F.relu(x + self.body(x))


class StrongCNN(nn.Module):
    """A compact residual detector (281,697 parameters as shipped): the image and its high-frequency residual, two
    layers at full 32 x 32 resolution (where pixel-level generation traces live), then two halvings; mean and max
    pooling feed one logit. In eval mode it averages its logits over test-time views: test_shift=k adds the image
    moved k pixels each way (reflection-padded), test_flip its mirrors (with test_shift=1: 10 views). `input`: one of
    data/inputs.INPUTS, taken before the residual."""

    def __init__(self, widths=(32, 64, 112), test_flip=False, test_shift=0, input="rgb"):
        super().__init__()
        self.config = {"arch": "strong", "widths": list(widths), "test_flip": bool(test_flip),
                       "test_shift": int(test_shift), **input_config(input)}
        self.test_flip, self.test_shift, self.input = bool(test_flip), int(test_shift), input
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            conv_bn(6, w1), conv_bn(w1, w1),                                        # 32 x 32
            conv_bn(w1, w2, stride=2), ResidualBlock(w2),                           # 16 x 16
            conv_bn(w2, w3, stride=2), conv_bn(w3, w3))                             # 8 x 8
        self.head = nn.Linear(2 * w3, 1)

    def forward(self, x):
        if self.training:
            return self.logit(x)
        return torch.stack([self.logit(view) for view in self.views(x)]).mean(0)

    def views(self, x):
        """The test-time views of a batch: the images, their k-pixel shifts, and the mirrors of all."""
        views = [x]
        if self.test_shift:
            k, (h, w) = self.test_shift, x.shape[2:]
            padded = F.pad(x, (k, k, k, k), mode="reflect")
            views += [padded[:, :, dy:dy + h, dx:dx + w] for dy, dx in ((0, k), (2 * k, k), (k, 0), (k, 2 * k))]
        return views + [view.flip(3) for view in views] if self.test_flip else views

    def logit(self, x):
        x = INPUTS[self.input](x)
        x = self.features(torch.cat([x, highpass(x)], dim=1))   # the residual: what a generator's upsampling leaves
        return self.head(torch.cat([x.mean((2, 3)), x.amax((2, 3))], dim=1)).squeeze(1)


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


@contextmanager
def single_view(model):
    """Test-time view averaging off for a while (a no-op for models without it): for cheap monitoring during
    training, and for heat maps, which should explain the image as it is."""
    saved = {name: getattr(model, name) for name in ("test_flip", "test_shift") if hasattr(model, name)}
    for name, value in saved.items():
        setattr(model, name, type(value)(0))
    try:
        yield model
    finally:
        for name, value in saved.items():
            setattr(model, name, value)


ARCHITECTURES = {"cnn": CIFAKE_CNN, "strong": StrongCNN, "patch": PatchCNN, "pretrained": PretrainedDetector}


def build_model(arch="cnn", **kwargs):
    """A network by architecture name (`cnn` takes attn=..., `strong` widths=..., `patch` width=...; all input=...)."""
    if arch not in ARCHITECTURES:
        raise ProjectError(f"unknown architecture '{arch}' (choose from {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[arch](**kwargs)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())
