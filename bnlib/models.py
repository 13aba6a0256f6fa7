"""Networks by name: build and initialise, fuse runs, and count parameters (Table 1).

Names and architectures live in the registry (:mod:`bnlib.architectures`); the role of each
parameter is declared by the layers (:mod:`bnlib.layers`). This module works for every
registered family.
"""

from __future__ import annotations

import torch
from torch import nn

from .architectures import build_network
from .layers import PARTS, parameter_parts

__all__ = ["PARTS", "TABLE1_NETWORKS", "build", "fuse", "parameter_counts", "parameter_parts", "split_state",
           "stack_states", "table1"]

# The 13 networks of Table 1, deep (top) then wide (bottom).
TABLE1_NETWORKS = (
    "resnet-14", "resnet-32", "resnet-56", "resnet-110", "resnet-218", "resnet-434", "resnet-866",
    "wrn-14-1", "wrn-14-2", "wrn-14-4", "wrn-14-8", "wrn-14-16", "wrn-14-32",
)


def build(
    name: str,
    *,
    bn_init: str = "uniform",
    feature_init: str = "he-normal",
    normalize: bool = True,
    num_classes: int = 10,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Build and initialise a network by name, e.g. ``build("resnet-110", bn_init="ones")``.

    Initialisation draws from a generator seeded with ``seed`` on the CPU, so the same seed
    gives the same random features on every device. ``device="meta"`` builds the structure
    without allocating or initialising weights (for counting parameters of huge networks).
    """
    from .init import initialize

    if str(device) == "meta":
        with torch.device("meta"):
            return build_network(name, normalize=normalize, num_classes=num_classes)
    model = build_network(name, normalize=normalize, num_classes=num_classes)
    initialize(model, bn_init=bn_init, feature_init=feature_init, seed=seed)
    return model.to(device)


def fuse(networks: list[nn.Module]) -> nn.Module:
    """R networks of one architecture as one network with ``runs=R``: trained together, each
    run computes what it would alone (to within float rounding)."""
    first = networks[0]
    fused = build_network(first.network.name, normalize=first.normalize, num_classes=first.num_classes,
                          runs=len(networks))
    fused.load_state_dict(stack_states([n.state_dict() for n in networks]))
    return fused.to(next(first.parameters()).device)


def stack_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Per-run tensors (state dicts, optimizer buffers) -> fused ones, along dim 0."""
    return {k: torch.cat([s[k] for s in states]) if states[0][k].dim() else states[0][k] for k in states[0]}


def split_state(state: dict[str, torch.Tensor], runs: int) -> list[dict[str, torch.Tensor]]:
    """The inverse of :func:`stack_states`."""
    return [{k: (v.chunk(runs)[r] if v.dim() else v).clone() for k, v in state.items()} for r in range(runs)]


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
    from .architectures import lookup

    rows = []
    for name in TABLE1_NETWORKS:
        network = lookup(name)
        rows.append({"network": name, "D": network.depth, "W": network.width,
                     **parameter_counts(build(name, device="meta"))})
    return rows
