"""Layers that carry a "runs" dimension and declare the role of each of their parameters.

An architecture is built from these, so two things hold for every registered family:

* **Roles are declared, not guessed.** Each layer says which parts of the paper its parameters
  belong to (:data:`PARTS`: ``gamma``, ``beta``, ``shortcut``, ``conv``, ``output``), through
  :meth:`roles`. The training modes (:mod:`bnlib.freezing`), the initialisations
  (:mod:`bnlib.init`) and Table 1's columns read these roles and nothing else.
* **Runs fuse.** With ``runs=R`` a layer holds R independent layers side by side (grouped
  convolution, per-channel BatchNorm, grouped linear); run r's tensors are the r-th slice along
  dimension 0 of every parameter and buffer. ``runs=1`` is the ordinary layer, with the same
  state-dict layout.
"""

from __future__ import annotations

import torch
from torch import nn

PARTS = ("gamma", "beta", "shortcut", "conv", "output")


class BatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose normalisation can be switched off (Appendix E: gamma/beta without N).

    With ``normalize=False`` the layer computes ``gamma * x + beta`` per channel and keeps no
    running statistics in use, so gamma and beta remain the only thing it contributes. A
    BatchNorm on a shortcut (``shortcut=True``) belongs to the shortcut part too: Table 1
    counts it in both columns.
    """

    def __init__(self, channels: int, normalize: bool = True, *, shortcut: bool = False, runs: int = 1):
        super().__init__(channels * runs)
        self.normalize = normalize
        self.shortcut = shortcut

    def roles(self) -> dict[str, frozenset[str]]:
        extra = {"shortcut"} if self.shortcut else set()
        return {"weight": frozenset({"gamma"} | extra), "bias": frozenset({"beta"} | extra)}

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


class Conv2d(nn.Conv2d):
    """A convolution without bias (``role`` ``conv`` or ``shortcut``); with R runs, R
    independent ones as one grouped convolution."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, *, role: str = "conv", runs: int = 1):
        super().__init__(cin * runs, cout * runs, kernel, stride=stride, padding=kernel // 2, bias=False, groups=runs)
        self.role = role

    def roles(self) -> dict[str, frozenset[str]]:
        return {"weight": frozenset({self.role})}


class Linear(nn.Linear):
    """R independent linear layers in one: weight (R*out, in), input (B, R*in) -> (B, R, out).
    With R = 1 it is ``nn.Linear``. Its weight and bias are the ``output`` part."""

    def __init__(self, cin: int, cout: int, *, runs: int = 1):
        super().__init__(cin, cout * runs)
        self.runs = runs

    def roles(self) -> dict[str, frozenset[str]]:
        return {"weight": frozenset({"output"}), "bias": frozenset({"output"})}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.runs == 1:
            return super().forward(x)
        r = self.runs
        weight = self.weight.view(r, -1, self.in_features)
        out = torch.einsum("bri,roi->bro", x.view(x.shape[0], r, self.in_features), weight)
        return out + self.bias.view(r, -1)


def parameter_parts(model: nn.Module) -> dict[str, frozenset[str]]:
    """The parts each named parameter of ``model`` belongs to, as its layers declare them.

    A layer with parameters that declares no roles raises: it would silently escape every
    training mode and every Table 1 column."""
    parts: dict[str, frozenset[str]] = {}
    for module_name, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        if not own:
            continue
        declared = module.roles() if hasattr(module, "roles") else {}
        for pname in own:
            full = f"{module_name}.{pname}" if module_name else pname
            if pname not in declared or not declared[pname] <= set(PARTS):
                raise TypeError(f"parameter {full} of {type(module).__name__} declares no role among {PARTS}: "
                                "build architectures from bnlib.layers or give the layer a roles() method")
            parts[full] = declared[pname]
    return parts
