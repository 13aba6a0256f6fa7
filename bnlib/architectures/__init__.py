"""The registry of architecture families: one place that turns a network's name into a network.

A family owns everything that depends on its architecture: parsing its names into a
:class:`Network` (with the coordinates the figures need: depth and width), building it
(from :mod:`bnlib.layers`, whose layers declare the role of each parameter and fuse runs),
and a relative cost that orders sweeps. Nothing else in bnlib knows a family's names.

Adding an architecture is one module defining a :class:`Family` plus one line in
:func:`_families` (or, from outside the package, ``BNLIB_ARCHITECTURES=module:FAMILY`` in the
environment, which every process of a run sees, or a call to :func:`register` in one process).
"""

from __future__ import annotations

import importlib
import os

from torch import nn

from ..errors import ConfigError
from .network import Family, Network

__all__ = ["FAMILIES", "Family", "Network", "build_network", "canonical_name", "cost", "family", "lookup",
           "register", "unregister"]


def _families() -> list[Family]:
    from .resnet import FAMILY as RESNET

    return [RESNET]  # add a family here


FAMILIES: list[Family] = _families()
_PLUGINS: set[str] = set()


def _load_plugins() -> None:
    """Families outside the package: ``BNLIB_ARCHITECTURES="module:attribute,..."`` names them,
    so that every process of a run (a sweep's Ray workers, a papermill kernel) knows them too.
    Loaded at the first lookup, not at import: a plug-in module imports bnlib itself."""
    for entry in filter(None, (e.strip() for e in os.environ.get("BNLIB_ARCHITECTURES", "").split(","))):
        if entry in _PLUGINS:
            continue
        _PLUGINS.add(entry)
        module, _, attribute = entry.partition(":")
        try:
            plugin = getattr(importlib.import_module(module), attribute or "FAMILY")
        except (ImportError, AttributeError) as error:
            raise ConfigError(f"BNLIB_ARCHITECTURES: cannot load {entry!r}: {error}") from None
        if all(f.name != plugin.name for f in FAMILIES):
            FAMILIES.append(plugin)


def register(family: Family) -> None:
    """Add a family from outside the package (a plug-in, a test); its names must be new."""
    if any(f.name == family.name for f in FAMILIES):
        raise ValueError(f"an architecture family named {family.name!r} is registered already")
    FAMILIES.append(family)


def unregister(name: str) -> None:
    FAMILIES[:] = [f for f in FAMILIES if f.name != name]


def family(network: Network) -> Family:
    _load_plugins()
    return next(f for f in FAMILIES if f.name == network.family)


def lookup(name: str) -> Network:
    """The network a name stands for, e.g. ``lookup("WRN-14-1").name == "resnet-14"``."""
    _load_plugins()
    text = str(name).strip().lower()
    for candidate in FAMILIES:
        network = candidate.parse(text)
        if network is not None:
            return network
    forms = "; ".join(f.forms for f in FAMILIES)
    raise ConfigError(f"unknown model {name!r}: use {forms}")


def canonical_name(name: str) -> str:
    """One spelling per network; a name no family knows is returned as written (lower case), for
    validation to report with the valid forms."""
    try:
        return lookup(name).name
    except ConfigError:
        return str(name).strip().lower()


def build_network(name: str, *, normalize: bool = True, num_classes: int = 10, runs: int = 1) -> nn.Module:
    """The uninitialised network named ``name``; it remembers what it is (``.network``,
    ``.normalize``, ``.num_classes``, ``.runs``) so that runs of it can be fused."""
    network = lookup(name)
    model = family(network).build(network, normalize=normalize, num_classes=num_classes, runs=runs)
    model.network, model.normalize, model.num_classes, model.runs = network, normalize, num_classes, runs
    return model


def cost(name: str) -> float:
    network = lookup(name)
    return family(network).cost(network)
