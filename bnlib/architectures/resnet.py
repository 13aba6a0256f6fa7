"""The paper's CIFAR-10 ResNets (Appendix B, Table 1): ``resnet-N`` and wide ``wrn-N-W``.

N = 6D + 2 layers: a 3x3 convolution, three stages of D residual blocks with 16W, 32W and 64W
filters, global average pooling and a linear output layer. ``wrn-N-1`` is ``resnet-N``.
"""

from __future__ import annotations

import re

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..layers import BatchNorm2d, Conv2d, Linear
from .network import Network


class Block(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, normalize: bool, runs: int = 1):
        super().__init__()
        self.conv1 = Conv2d(cin, cout, 3, stride, runs=runs)
        self.bn1 = BatchNorm2d(cout, normalize, runs=runs)
        self.conv2 = Conv2d(cout, cout, 3, 1, runs=runs)
        self.bn2 = BatchNorm2d(cout, normalize, runs=runs)
        # Downsampling blocks use a 1x1 stride-2 convolution followed by BatchNorm, as in the
        # authors' framework; every other shortcut is the identity with no parameters.
        self.shortcut = (
            nn.Sequential(Conv2d(cin, cout, 1, stride, role="shortcut", runs=runs),
                          BatchNorm2d(cout, normalize, shortcut=True, runs=runs))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In-place ReLU and add: BatchNorm's backward needs its input, not its output, so this
        # is safe under autograd and saves two full-size tensors of memory traffic per block.
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out, inplace=True)


class ResNet(nn.Module):
    """The paper's ResNet; with ``runs=R``, R independent networks side by side: input
    (B, R*3, H, W), output (B, R, classes)."""

    def __init__(self, depth: int, width: int, normalize: bool = True, num_classes: int = 10, runs: int = 1):
        super().__init__()
        widths = [16 * width, 32 * width, 64 * width]
        self.conv = Conv2d(3, widths[0], 3, 1, runs=runs)
        self.bn = BatchNorm2d(widths[0], normalize, runs=runs)
        blocks = []
        cin = widths[0]
        for stage, cout in enumerate(widths):
            for index in range(depth):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(Block(cin, cout, stride, normalize, runs))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = Linear(widths[-1], num_classes, runs=runs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.conv(x)), inplace=True)
        out = self.blocks(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


class ResNetFamily:
    name = "resnet"
    forms = "resnet-N or wrn-N-W with N = 6D+2, D >= 1, W >= 1 (resnet-14, resnet-110, wrn-14-8)"

    def parse(self, name: str) -> Network | None:
        match = re.fullmatch(r"resnet-(\d+)|wrn-(\d+)-(\d+)", name)
        if match is None:
            return None
        layers = int(match.group(1) or match.group(2))
        width = int(match.group(3) or 1)
        if layers < 8 or (layers - 2) % 6 or width < 1:
            raise ConfigError(f"unknown model {name!r}: N in resnet-N / wrn-N-W must be 6D+2 with D >= 1 "
                              "(8, 14, 20, 32, ...), W >= 1")
        depth = (layers - 2) // 6
        canonical = f"resnet-{layers}" if width == 1 else f"wrn-{layers}-{width}"
        return Network(canonical, self.name, depth, width, series="wide" if match.group(3) else "deep")

    def build(self, network: Network, *, normalize: bool, num_classes: int, runs: int) -> nn.Module:
        return ResNet(network.depth, network.width, normalize, num_classes, runs)

    def cost(self, network: Network) -> float:
        # Each stage has 2D convolutions of (16W 2^s)^2 weights on (32 / 2^s)^2 pixels.
        return network.depth * network.width**2

    def memory(self, network: Network, batch_size: int) -> float:
        """Bytes to train on 32x32 images, roughly and on the high side: weights with their
        gradients and momentum (3x3 convolutions of (16W 2^s)^2 weights, 2D per stage), and the
        activations autograd keeps (about four tensors per block of 16W 2^s channels on
        (32 / 2^s)^2 pixels), in fp32."""
        d, w = network.depth, network.width
        weights = 9 * (16 * w) ** 2 * 2 * d * (1 + 4 + 16)
        activations = 4 * d * 16 * w * 1024 * (1 + 1 / 2 + 1 / 4) * batch_size
        return 4.0 * (4 * weights + 1.5 * activations)


FAMILY = ResNetFamily()
