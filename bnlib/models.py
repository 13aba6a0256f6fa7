"""The CIFAR-10 ResNets of the paper (Appendix B, Table 1) and their parameter counts.

One registry of names: ``resnet-N`` (N = 6D + 2, width W = 1) and ``wrn-N-W``. Every tensor
of a network belongs to named *parts* (``gamma``, ``beta``, ``shortcut``, ``conv``,
``output``), which is what the training modes (:mod:`bnlib.freezing`) and the Table 1
columns are built from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .config import ConfigError

# The 13 networks of Table 1, deep (top) then wide (bottom).
TABLE1_NETWORKS = (
    "resnet-14", "resnet-32", "resnet-56", "resnet-110", "resnet-218", "resnet-434", "resnet-866",
    "wrn-14-1", "wrn-14-2", "wrn-14-4", "wrn-14-8", "wrn-14-16", "wrn-14-32",
)

PARTS = ("gamma", "beta", "shortcut", "conv", "output")


@dataclass(frozen=True)
class Architecture:
    name: str
    depth: int  # D: residual blocks per stage
    width: int  # W: multiplier of 16, 32, 64 filters


def parse_name(name: str) -> Architecture:
    """``resnet-N`` or ``wrn-N-W`` with N = 6D + 2 for a whole number D >= 1."""
    match = re.fullmatch(r"(resnet-(\d+))|(wrn-(\d+)-(\d+))", name.strip().lower())
    if match is None:
        raise ConfigError(
            f"unknown model {name!r}: use resnet-N or wrn-N-W with N = 6D+2 (resnet-14, resnet-110, wrn-14-8)"
        )
    layers = int(match.group(2) or match.group(4))
    width = 1 if match.group(2) else int(match.group(5))
    if layers < 8 or (layers - 2) % 6 or width < 1:
        raise ConfigError(
            f"unknown model {name!r}: N in resnet-N / wrn-N-W must be 6D+2 with D >= 1 (8, 14, 20, 32, ...), W >= 1"
        )
    return Architecture(name=name.strip().lower(), depth=(layers - 2) // 6, width=width)


def same_network(name: str) -> str:
    """One name per distinct network: ``wrn-N-1`` is ``resnet-N`` (the paper's WRN-14-1 is
    ResNet-14), so a grid that lists both trains it once."""
    arch = parse_name(name)
    return f"resnet-{6 * arch.depth + 2}" if arch.width == 1 else arch.name


def training_cost(name: str) -> int:
    """Relative cost of training a network, used to order sweeps: multiply-adds per image grow
    as D * W**2 (each stage has 2D convolutions of (16W 2^s)^2 weights on (32 / 2^s)^2 pixels)."""
    arch = parse_name(name)
    return arch.depth * arch.width**2


class BatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose normalisation can be switched off (Appendix E: gamma/beta without N).

    With ``normalize=False`` the layer computes ``gamma * x + beta`` per channel and keeps no
    running statistics in use, so gamma and beta remain the only thing it contributes.
    """

    def __init__(self, channels: int, normalize: bool = True):
        super().__init__(channels)
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled(x.device.type):
            # Mixed precision keeps BatchNorm in fp32: statistics of bf16 activations lose digits.
            with torch.autocast(x.device.type, enabled=False):
                return self.forward(x.float())
        if self.normalize:
            return super().forward(x)
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", normalize={self.normalize}"


def _conv(cin: int, cout: int, kernel: int, stride: int, replicates: int) -> nn.Conv2d:
    """A convolution without bias; with R replicates, R independent ones as one grouped conv."""
    return nn.Conv2d(cin * replicates, cout * replicates, kernel, stride=stride, padding=kernel // 2,
                     bias=False, groups=replicates)


class GroupedLinear(nn.Linear):
    """R independent linear layers in one: weight (R*out, in), input (B, R*in) -> (B, R, out).
    With R = 1 it is ``nn.Linear`` with the same parameters and state-dict layout."""

    def __init__(self, cin: int, cout: int, replicates: int = 1):
        super().__init__(cin, cout * replicates)
        self.replicates = replicates

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.replicates == 1:
            return super().forward(x)
        r = self.replicates
        weight = self.weight.view(r, -1, self.in_features)
        out = torch.einsum("bri,roi->bro", x.view(x.shape[0], r, self.in_features), weight)
        return out + self.bias.view(r, -1)


class Block(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, normalize: bool, replicates: int = 1):
        super().__init__()
        r = replicates
        self.conv1 = _conv(cin, cout, 3, stride, r)
        self.bn1 = BatchNorm2d(cout * r, normalize)
        self.conv2 = _conv(cout, cout, 3, 1, r)
        self.bn2 = BatchNorm2d(cout * r, normalize)
        # Downsampling blocks use a 1x1 stride-2 convolution followed by BatchNorm, as in the
        # authors' framework; every other shortcut is the identity with no parameters.
        self.shortcut = (
            nn.Sequential(_conv(cin, cout, 1, stride, r), BatchNorm2d(cout * r, normalize))
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
    """The paper's ResNet. With ``replicates=R`` it holds R independent networks side by side
    (grouped convolutions, per-channel BatchNorm): input (B, R*3, H, W), output (B, R, classes).
    Replicate r's tensors are the r-th slice along dimension 0 of every parameter and buffer."""

    def __init__(self, arch: Architecture, normalize: bool = True, num_classes: int = 10, replicates: int = 1):
        super().__init__()
        self.arch = arch
        self.normalize = normalize
        self.replicates = r = replicates
        widths = [16 * arch.width, 32 * arch.width, 64 * arch.width]
        self.conv = _conv(3, widths[0], 3, 1, r)
        self.bn = BatchNorm2d(widths[0] * r, normalize)
        blocks = []
        cin = widths[0]
        for stage, cout in enumerate(widths):
            for index in range(arch.depth):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(Block(cin, cout, stride, normalize, r))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = GroupedLinear(widths[-1], num_classes, r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.conv(x)), inplace=True)
        out = self.blocks(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


def build(
    name: str,
    *,
    bn_init: str = "uniform",
    feature_init: str = "he-normal",
    normalize: bool = True,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> ResNet:
    """Build and initialise a network by name, e.g. ``build("resnet-110", bn_init="ones")``.

    Initialisation draws from a generator seeded with ``seed`` on the CPU, so the same seed
    gives the same random features on every device. ``device="meta"`` builds the structure
    without allocating or initialising weights (for counting parameters of huge networks).
    """
    from .init import initialize  # here, not at the top: init imports this module's classes

    arch = parse_name(name)
    if str(device) == "meta":
        with torch.device("meta"):
            return ResNet(arch, normalize)
    model = ResNet(arch, normalize)
    initialize(model, bn_init=bn_init, feature_init=feature_init, seed=seed)
    return model.to(device)


def fuse(networks: list[ResNet]) -> ResNet:
    """R networks of one architecture as one :class:`ResNet` with ``replicates=R``: trained
    together, each replicate computes what it would alone (to within float rounding)."""
    first = networks[0]
    fused = ResNet(first.arch, first.normalize, replicates=len(networks))
    fused.load_state_dict(stack_states([n.state_dict() for n in networks]))
    return fused.to(next(first.parameters()).device)


def stack_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Per-replicate tensors (state dicts, optimizer buffers) -> fused ones, along dim 0."""
    return {k: torch.cat([s[k] for s in states]) if states[0][k].dim() else states[0][k] for k in states[0]}


def split_state(state: dict[str, torch.Tensor], replicates: int) -> list[dict[str, torch.Tensor]]:
    """The inverse of :func:`stack_states`."""
    return [{k: (v.chunk(replicates)[r] if v.dim() else v).clone() for k, v in state.items()}
            for r in range(replicates)]


def parameter_parts(model: nn.Module) -> dict[str, frozenset[str]]:
    """The parts each named parameter belongs to.

    A BatchNorm's weight is ``gamma`` and its bias ``beta``; the shortcut's 1x1 convolution
    and its BatchNorm are also ``shortcut`` (Table 1 counts that BatchNorm in both columns);
    the final linear layer is ``output``; every other convolution is ``conv``.
    """
    parts: dict[str, frozenset[str]] = {}
    for module_name, module in model.named_modules():
        in_shortcut = ".shortcut" in f".{module_name}"
        extra = {"shortcut"} if in_shortcut else set()
        for pname, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{pname}" if module_name else pname
            if isinstance(module, nn.BatchNorm2d):
                parts[full] = frozenset({"gamma" if pname == "weight" else "beta"} | extra)
            elif isinstance(module, nn.Conv2d):
                parts[full] = frozenset(extra or {"conv"})
            elif isinstance(module, nn.Linear):
                parts[full] = frozenset({"output"})
            else:  # a layer type this module does not know would escape every training mode
                raise TypeError(f"unclassified parameter {full} of {type(module).__name__}")
    return parts


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Parameter counts in Table 1's columns: batchnorm, shortcut, output, total."""
    params = dict(model.named_parameters())
    counts = {"batchnorm": 0, "shortcut": 0, "output": 0, "total": 0}
    for name, parts in parameter_parts(model).items():
        n = params[name].numel()
        counts["total"] += n
        counts["batchnorm"] += n if parts & {"gamma", "beta"} else 0
        counts["shortcut"] += n if "shortcut" in parts else 0
        counts["output"] += n if "output" in parts else 0
    return counts


def table1() -> list[dict[str, int | str]]:
    """Table 1, computed: one row per network with D, W and the four counts."""
    rows = []
    for name in TABLE1_NETWORKS:
        arch = parse_name(name)
        rows.append({"network": name, "D": arch.depth, "W": arch.width, **parameter_counts(build(name, device="meta"))})
    return rows
