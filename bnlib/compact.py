"""Compact states: what a run whose convolutions are frozen must keep to be rebuilt anywhere.

A BatchNorm-only ResNet-110 trains 8.3K of its 1.7M parameters; the rest are random features
that its seed and initialisation redraw bit for bit (:func:`bnlib.models.build` draws them
from a CPU generator). So its checkpoint and final weights keep only what trains (γ, β, the
output or shortcut weights where they train) and every buffer (BatchNorm's running
statistics), plus a fingerprint of the frozen tensors. On reading, the network is built again
from the run's config, its frozen tensors are checked against that fingerprint (another torch,
init or seed would draw others: :class:`FrozenMismatch`), and the kept tensors are put back.
A 7 MB checkpoint becomes tens of kilobytes: small enough to commit, so that a run of days
resumes on any machine. Runs that train convolutions keep the full form.

No generator state is kept: every random draw of training comes from generators seeded by
(seed, epoch) (:mod:`bnlib.data`), so the epoch is the whole of it.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from .config import RunConfig
from .freezing import trainable_names

FORM = "compact"


class FrozenMismatch(ValueError):
    """The frozen tensors rebuilt from a run's config are not those its state was saved with."""


def applies(config: RunConfig) -> bool:
    """Whether a run's state is kept compact: its convolutions do not train, and its features
    are drawn so that any machine redraws them exactly (:data:`bnlib.init.REDRAWN_EXACTLY`)."""
    from .init import REDRAWN_EXACTLY
    from .packs import trains_convolutions

    return not trains_convolutions(config) and config.model.feature_init in REDRAWN_EXACTLY


def fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """A hash of tensors' names, dtypes, shapes and values (memory layout aside)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{t.dtype}|{tuple(tensors[name].shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _frozen(model: nn.Module, trainable: str) -> set[str]:
    return {name for name, _ in model.named_parameters()} - set(trainable_names(model, trainable))


def compact(state: dict[str, torch.Tensor], model: nn.Module, trainable: str) -> dict:
    """``state`` (a state dict of ``model``'s architecture) in compact form: the tensors that
    train and every buffer, and the fingerprint of the frozen rest."""
    frozen = _frozen(model, trainable)
    return {"form": FORM, "fingerprint": fingerprint({k: v for k, v in state.items() if k in frozen}),
            "num_classes": model.num_classes,  # the output layer to rebuild, which may be frozen
            "tensors": {k: v.detach().cpu().contiguous() for k, v in state.items() if k not in frozen}}


def is_compact(state: object) -> bool:
    return isinstance(state, dict) and state.get("form") == FORM


def expand(state: dict, model: nn.Module, trainable: str) -> dict[str, torch.Tensor]:
    """A full state dict from ``state``: as stored when full; when compact, ``model`` (built
    afresh from the run's config) supplies the frozen tensors, which must match the stored
    fingerprint (else :class:`FrozenMismatch`)."""
    if not is_compact(state):
        return state
    frozen = _frozen(model, trainable)
    rebuilt = {k: v for k, v in model.state_dict().items() if k in frozen}
    if fingerprint(rebuilt) != state["fingerprint"]:
        raise FrozenMismatch("its frozen tensors differ from those its config rebuilds (another torch version, "
                             "init or seed?)")
    return {**{k: v.detach().clone() for k, v in rebuilt.items()}, **state["tensors"]}


def stored(state: dict[str, torch.Tensor], model: nn.Module, config: RunConfig) -> dict:
    """How a run keeps ``state``: compact when its convolutions are frozen, else in full."""
    if applies(config):
        return compact(state, model, config.train.trainable)
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def rebuild(config: RunConfig, num_classes: int) -> nn.Module:
    """The run's network as initialised: the source of its frozen tensors."""
    from .models import build

    m = config.model
    return build(m.model, bn_init=m.bn_init, feature_init=m.feature_init, normalize=m.normalize,
                 num_classes=num_classes, seed=config.train.seed)
