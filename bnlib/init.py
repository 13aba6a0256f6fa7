"""Initialisation schemes: one registry for BatchNorm, one for the random features.

BatchNorm (Section 4, Appendix D). The paper's default is gamma ~ U[0,1], beta = 0, which was
PyTorch's default in 2019; PyTorch has initialised gamma = 1 since version 1.2, so every scheme
here sets both tensors explicitly.

Features (Section 4, Appendix C): every convolution and the output layer's weight. The output
layer's bias starts at 0 in every scheme.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .errors import ConfigError

Generator = torch.Generator


def _bn_uniform(gamma: torch.Tensor, beta: torch.Tensor, g: Generator) -> None:
    gamma.uniform_(0.0, 1.0, generator=g)
    beta.zero_()


def _bn_ones(gamma: torch.Tensor, beta: torch.Tensor, g: Generator) -> None:
    gamma.fill_(1.0)
    beta.zero_()


def _bn_symmetric(gamma: torch.Tensor, beta: torch.Tensor, g: Generator) -> None:
    gamma.uniform_(-1.0, 1.0, generator=g)
    beta.zero_()


def _bn_ones_beta_one(gamma: torch.Tensor, beta: torch.Tensor, g: Generator) -> None:
    # Appendix D: beta = 1 lets more normalised features pass the ReLU.
    gamma.fill_(1.0)
    beta.fill_(1.0)


BN_INITS: dict[str, Callable[[torch.Tensor, torch.Tensor, Generator], None]] = {
    "uniform": _bn_uniform,
    "ones": _bn_ones,
    "symmetric": _bn_symmetric,
    "ones-beta-one": _bn_ones_beta_one,
}


def _he_std(weight: torch.Tensor) -> float:
    """He et al. (2015b): std = sqrt(2 / fan_in), the ReLU gain over the fan-in."""
    fan_in = weight[0].numel()
    return math.sqrt(2.0 / fan_in)


def _he_normal(w: torch.Tensor, g: Generator) -> None:
    w.normal_(0.0, _he_std(w), generator=g)


def _he_uniform(w: torch.Tensor, g: Generator) -> None:
    # U[-a, a] with a = sqrt(3) * std has the same variance as He normal.
    bound = math.sqrt(3.0) * _he_std(w)
    w.uniform_(-bound, bound, generator=g)


def _binary(w: torch.Tensor, g: Generator) -> None:
    # Ramanujan et al. (2019)'s signed constant: each weight is +-sigma of its layer.
    signs = torch.randint(0, 2, w.shape, generator=g, dtype=w.dtype) * 2 - 1
    w.copy_(signs * _he_std(w))


def _orthogonal(w: torch.Tensor, g: Generator) -> None:
    # The paper orthogonalises normal samples with an SVD: the nearest (semi-)orthogonal
    # matrix U V^T. Scaled by sqrt(2) (the ReLU gain) so that, when there are at least as many
    # inputs as outputs, the per-weight variance equals He normal's 2 / fan_in.
    matrix = torch.empty(w.shape[0], w[0].numel()).normal_(0.0, 1.0, generator=g)
    u, _, vh = torch.linalg.svd(matrix, full_matrices=False)
    w.copy_((u @ vh).reshape(w.shape) * math.sqrt(2.0))


FEATURE_INITS: dict[str, Callable[[torch.Tensor, Generator], None]] = {
    "he-normal": _he_normal,
    "he-uniform": _he_uniform,
    "binary": _binary,
    "orthogonal": _orthogonal,
}

# Feature inits whose draws come out bit for bit the same under any torch build and on any CPU
# (elementwise sampling from a seeded CPU generator), so a run's frozen features can be redrawn
# instead of stored (bnlib.compact). Orthogonal features go through an SVD, whose last bits depend
# on the LAPACK build: torch 2.11 on a GPU machine and torch 2.14.1 on a CPU drew other
# orthogonal matrices from the same seed, while the other three inits agreed.
REDRAWN_EXACTLY = frozenset({"he-normal", "he-uniform", "binary"})


def check_names(bn_init: str, feature_init: str) -> None:
    if bn_init not in BN_INITS:
        raise ConfigError(f"unknown bn_init {bn_init!r}: choose from {', '.join(BN_INITS)}")
    if feature_init not in FEATURE_INITS:
        raise ConfigError(f"unknown feature_init {feature_init!r}: choose from {', '.join(FEATURE_INITS)}")


@torch.no_grad()
def initialize(model: nn.Module, *, bn_init: str, feature_init: str, seed: int) -> None:
    """Initialise every parameter of ``model`` in place, reproducibly from ``seed``, by the
    role its layer declares (:mod:`bnlib.layers`): gamma and beta by ``bn_init``, every other
    weight (convolutions, shortcut convolutions, output layer) by ``feature_init``, biases 0.
    Layers are visited in module order, so one seed gives one network on every device."""
    check_names(bn_init, feature_init)
    g = torch.Generator().manual_seed(seed)
    for module in model.modules():
        roles = module.roles() if hasattr(module, "roles") else {}
        if "gamma" in roles.get("weight", ()):
            BN_INITS[bn_init](module.weight, module.bias, g)
            module.reset_running_stats()
        elif "weight" in roles:
            FEATURE_INITS[feature_init](module.weight, g)
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
