"""Packs: many runs of one network trained as one fused network.

A pack is R runs of the same network that may differ in ``seed``, ``trainable``, ``bn_init`` and
``feature_init``. They train together as one network with a runs dimension
(:func:`bnlib.models.fuse`, :mod:`bnlib.layers`): run r owns the r-th slice along dimension 0 of
every fused parameter and buffer. Each run keeps its own initialisation, data order,
augmentation and BatchNorm statistics, and trains only its own parts:

* **Masks** (:class:`Pack`): what each run trains is read from a single network of the
  architecture with :func:`bnlib.freezing.trainable_names`; a fused parameter is trainable in
  the pack when some run trains it (``requires_grad=True``), and frozen for all when none does
  (``requires_grad=False``: its weight gradient is never computed, so a pack of BatchNorm-only
  runs skips the convolutions' weight gradients, as a BatchNorm-only run alone does).
* **Masked SGD** (:class:`PackSGD`): ``torch.optim.SGD``'s arithmetic (momentum, weight decay,
  no dampening) on whole tensors, with each partly trained tensor's update masked per run
  (``torch.where``): a run's frozen slice keeps a zero momentum and stays bit-identical to its
  initial value, whatever the other runs do. A pack in which every run trains the same tensors
  needs no mask and uses ``torch.optim.SGD`` itself.
* **Checkpoints** (:meth:`Pack.split_optimizer`, :meth:`Pack.stack_optimizer`): each run's
  optimizer state is stored exactly as a run trained alone stores it (a ``torch.optim.SGD``
  state dict over that run's trainable parameters, in the order
  :func:`bnlib.freezing.apply_trainable` returns them), so a packed run resumes alone and a run
  stopped alone resumes in a pack.

The planner (:func:`plan_packs`) groups the runs of a sweep into packs by these rules:

1. Runs pack together only when they are the same computation but for ``seed``, ``trainable``,
   ``bn_init`` and ``feature_init``: the same network, the same ``normalize`` (Appendix E's runs
   without normalisation pack among themselves), data, augmentation, epochs, batch size,
   learning rate and schedule, momentum, weight decay, precision, device, layout and
   compilation.
2. Within that, runs that train convolutions (``all``, ``all,-bn``, anything with the ``conv``
   part: "all-style") pack apart from runs whose convolutions are frozen (``bn``, ``none``,
   ``bn,shortcut,output``, ...), so that packs of the latter skip the convolutions' weight
   gradients.
3. A pack holds at most ``max_runs`` runs and, with ``memory_budget`` (bytes), at most as many
   as fit it by the family's ``memory(network, batch_size)`` estimate (times the pack size);
   a run that does not fit alone is a pack of one (validation then refuses it with a clear
   error). A group larger than that is cut into packs of as equal sizes as possible.
4. The order is deterministic and follows the input: packs in the order of their first run in
   it, runs in input order within each pack, so that with ``max_runs=1`` the packs are the
   input's runs in its order (a list such as ``paper-on-cpu`` trains in the order it gives);
   a run given twice (the same address) is planned once.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from .architectures import build_network, family, lookup
from .config import ModelConfig, RunConfig
from .freezing import trainable_names
from .layers import parameter_parts

__all__ = ["Pack", "PackSGD", "pack_key", "plan_packs", "trains_convolutions"]


# --------------------------------------------------------------------------- masks

@dataclass
class Pack:
    """The trainable structure of a pack of ``len(specs)`` runs of one network.

    ``names``: the fused parameters some run trains, in ``named_parameters`` order (the pack
    optimizer's parameters); ``run_names[r]``: what run r trains, in the order
    :func:`bnlib.freezing.apply_trainable` returns it for a run alone; ``trains[name]``: one
    flag per run."""

    names: list[str]
    run_names: list[list[str]]
    trains: dict[str, list[bool]]

    @classmethod
    def of(cls, model: nn.Module, specs: Sequence[str]) -> "Pack":
        """The pack of fused ``model`` (``model.runs == len(specs)``) whose run r trains
        ``specs[r]``; what a run trains is read from a single network of the architecture."""
        runs = getattr(model, "runs", 1)
        if runs != len(specs):
            raise ValueError(f"a network of {runs} runs cannot train {len(specs)} modes")
        single = _single(model.network.name, model.normalize, model.num_classes)
        run_names = [trainable_names(single, spec) for spec in specs]
        trained = [set(names) for names in run_names]
        trains = {name: [name in t for t in trained] for name, _ in model.named_parameters()}
        names = [name for name, flags in trains.items() if any(flags)]
        return cls(names, run_names, trains)

    @property
    def runs(self) -> int:
        return len(self.run_names)

    @property
    def uniform(self) -> bool:
        """Every run trains the same tensors (replicates of one mode): no mask is needed."""
        return all(names == self.run_names[0] for names in self.run_names)

    def masks(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """For each parameter that some runs train and others do not, a boolean tensor that
        broadcasts against it: True on the slices of the runs that train it. Parameters that
        every run trains have no mask."""
        params = dict(model.named_parameters())
        masks = {}
        for name in self.names:
            flags = self.trains[name]
            if all(flags):
                continue
            p = params[name]
            per_run = torch.tensor(flags, device=p.device)
            masks[name] = per_run.repeat_interleave(p.shape[0] // self.runs).view(-1, *[1] * (p.dim() - 1))
        return masks

    def apply(self, model: nn.Module) -> list[nn.Parameter]:
        """Freeze every parameter no run trains (``requires_grad=False``) and return the others,
        the pack optimizer's parameters (``apply_trainable`` for a pack)."""
        params = []
        for name, p in model.named_parameters():
            p.requires_grad_(name in self.trains and any(self.trains[name]))
            if p.requires_grad:
                params.append(p)
        return params

    def optimizer(self, model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer | None:
        """The pack's optimizer, after :meth:`apply`: ``torch.optim.SGD`` when every run trains
        the same tensors, :class:`PackSGD` with the per-run masks otherwise, None when no run
        trains anything (BatchNorm's running statistics still move in the forward passes)."""
        params = self.apply(model)
        if not params:
            return None
        if self.uniform:
            return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        masks = self.masks(model)
        return PackSGD(params, [masks.get(name) for name in self.names], lr=lr, momentum=momentum,
                       weight_decay=weight_decay)

    # ----------------------------------------------------------------------- checkpoints

    def split_optimizer(self, state: dict) -> list[dict | None]:
        """The pack optimizer's ``state_dict()`` -> each run's optimizer state, exactly as a run
        trained alone stores it (None for a run that trains nothing, as alone)."""
        group = state["param_groups"][0]
        buffers = {self.names[int(k)]: v["momentum_buffer"] for k, v in state["state"].items()
                   if v.get("momentum_buffer") is not None}
        out: list[dict | None] = []
        for r, names in enumerate(self.run_names):
            if not names:
                out.append(None)
                continue
            run_state = {i: {"momentum_buffer": buffers[name].chunk(self.runs)[r].clone()}
                         for i, name in enumerate(names) if name in buffers}
            out.append({"state": run_state, "param_groups": [_sgd_group(group, len(names))]})
        return out

    def stack_optimizer(self, states: Sequence[dict | None], model: nn.Module) -> dict[int, dict]:
        """Each run's optimizer state (as stored by a run alone or by a pack; None for a run that
        trains nothing or has not started) -> the ``"state"`` of the pack optimizer. A run's
        slice of a tensor it does not train, or has no momentum for yet, is zero (its update
        is masked; ``0 * momentum + grad`` is the first step's ``grad``)."""
        params = dict(model.named_parameters())
        stacked: dict[int, dict] = {}
        for j, name in enumerate(self.names):
            slices, present = [], False
            for r, names in enumerate(self.run_names):
                buf = None
                if states[r] is not None and name in names:
                    buf = states[r]["state"].get(names.index(name), {}).get("momentum_buffer")
                if buf is None:
                    p = params[name]
                    buf = torch.zeros((p.shape[0] // self.runs, *p.shape[1:]), dtype=p.dtype)
                else:
                    present = True
                slices.append(buf.to(device=params[name].device, dtype=params[name].dtype))
            if present:
                stacked[j] = {"momentum_buffer": torch.cat(slices)}
        return stacked

    def load_optimizer(self, optimizer: torch.optim.Optimizer, states: Sequence[dict | None], model: nn.Module) -> None:
        """Resume the pack optimizer from its runs' own optimizer states."""
        full = optimizer.state_dict()
        full["state"] = self.stack_optimizer(states, model)
        optimizer.load_state_dict(full)


@functools.lru_cache(maxsize=None)
def _single(name: str, normalize: bool, num_classes: int) -> nn.Module:
    with torch.device("meta"):
        return build_network(name, normalize=normalize, num_classes=num_classes)


@functools.lru_cache(maxsize=None)
def _sgd_defaults(momentum: float, weight_decay: float) -> tuple:
    group = torch.optim.SGD([torch.zeros(1)], lr=0.1, momentum=momentum, weight_decay=weight_decay) \
        .state_dict()["param_groups"][0]
    return tuple(group.items())


def _sgd_group(group: dict, n: int) -> dict:
    """The param group ``torch.optim.SGD`` stores for a run alone with ``n`` trainable tensors,
    with the pack's current lr, momentum and weight decay."""
    out = dict(_sgd_defaults(group["momentum"], group["weight_decay"]))
    out["lr"] = group["lr"]
    out["params"] = list(range(n))
    return out


# --------------------------------------------------------------------------- masked SGD

class PackSGD(torch.optim.Optimizer):
    """SGD with momentum and weight decay exactly as ``torch.optim.SGD`` computes them
    (``d = grad + wd * p``; ``buf = d`` at the first step, then ``buf = momentum * buf + d``;
    ``p -= lr * buf``), where ``d`` is zero outside each tensor's mask (the slices of the runs
    that train it). A masked slice keeps a zero momentum and ``p - lr * 0 == p``: it never
    changes, even when the other runs' gradients are not finite.

    Whole tensors at a time (``torch._foreach_*`` and one ``torch.where`` per partly trained
    tensor), never a loop over runs. ``masks[i]`` goes with the i-th parameter: None when every
    run trains it."""

    def __init__(self, params: Sequence[nn.Parameter], masks: Sequence[torch.Tensor | None], *, lr: float,
                 momentum: float = 0.0, weight_decay: float = 0.0):
        params = list(params)
        if len(masks) != len(params):
            raise ValueError("one mask (or None) per parameter")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})
        self._masks = {id(p): m for p, m in zip(params, masks)}

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
            grads = [p.grad for p in params]
            steps = list(torch._foreach_add(grads, params, alpha=wd)) if wd != 0 else list(grads)
            for k, p in enumerate(params):
                mask = self._masks[id(p)]
                if mask is not None:
                    steps[k] = torch.where(mask, steps[k], 0.0)
            if momentum != 0:
                old, old_steps, bufs = [], [], []
                for p, d in zip(params, steps):
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = d.detach().clone()
                    else:
                        old.append(buf)
                        old_steps.append(d)
                    bufs.append(buf)
                if old:
                    torch._foreach_mul_(old, momentum)
                    torch._foreach_add_(old, old_steps)
                steps = bufs
            torch._foreach_add_(params, steps, alpha=-lr)
        return loss


# --------------------------------------------------------------------------- the planner

def pack_key(config: RunConfig) -> RunConfig:
    """What runs of one pack share: the config with the fields a pack may vary (seed,
    trainable, bn_init, feature_init) set to their defaults."""
    model = ModelConfig()
    return config.replace(seed=0, trainable="all", bn_init=model.bn_init, feature_init=model.feature_init)


@functools.lru_cache(maxsize=None)
def _trains_convolutions(model: str, trainable: str) -> bool:
    single = _single(lookup(model).name, True, 10)
    parts = parameter_parts(single)
    return any("conv" in parts[name] for name in trainable_names(single, trainable))


def trains_convolutions(config: RunConfig) -> bool:
    """Whether the run trains convolution weights ("all-style"): its pack computes their
    weight gradients."""
    return _trains_convolutions(config.model.model, config.train.trainable)


def _pack_size(config: RunConfig, max_runs: int, memory_budget: float | None) -> int:
    size = max_runs
    if memory_budget is not None:
        network = lookup(config.model.model)
        estimate = getattr(family(network), "memory", None)
        if estimate is not None:
            size = min(size, int(memory_budget // estimate(network, config.train.batch_size)))
    return max(1, size)


def plan_packs(configs: Sequence[RunConfig], max_runs: int = 8,
               memory_budget: float | None = None) -> list[list[RunConfig]]:
    """Group runs into packs by the rules of the module docstring; ``max_runs=1`` gives one
    pack per run."""
    if not isinstance(max_runs, int) or max_runs < 1:
        raise ValueError(f"max_runs must be a whole number >= 1, got {max_runs!r}")
    from .results import address

    groups: dict[tuple, list[RunConfig]] = {}
    position: dict[str, int] = {}
    for config in configs:
        identity = address(config, "")
        if identity in position:
            continue
        position[identity] = len(position)
        groups.setdefault((pack_key(config), trains_convolutions(config)), []).append(config)
    packs = []
    for members in groups.values():
        size = _pack_size(members[0], max_runs, memory_budget)
        count = math.ceil(len(members) / size)
        base, extra = divmod(len(members), count)
        start = 0
        for i in range(count):
            end = start + base + (i < extra)
            packs.append(members[start:end])
            start = end
    # a later group's packs go between an earlier group's where its first run comes first
    return sorted(packs, key=lambda pack: position[address(pack[0], "")])
