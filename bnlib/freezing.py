"""Training modes: which parts of a network train and which stay at their random init.

A mode is a comma-separated set of parts, e.g. ``bn,shortcut,output``. Parts are those of
:func:`bnlib.layers.parameter_parts` (declared by the layers) plus shorthands: ``bn`` (gamma and beta of every
BatchNorm), ``all`` and ``none``. A part written with a leading ``-`` is removed, so Figure 1's
"gamma and beta frozen at their initial values, everything else trained" is ``all,-bn``.

The paper's modes:

=============================  ===================
paper                          ``trainable``
=============================  ===================
All                            ``all``
None                           ``none``
BN (gamma/beta/N)              ``bn``
BN + shortcut + output         ``bn,shortcut,output``
shortcut + output              ``shortcut,output``
gamma/beta frozen (Figure 1)   ``all,-bn``
gamma/N, beta/N (Appendix E)   ``gamma``, ``beta``
=============================  ===================
"""

from __future__ import annotations

import functools

from torch import nn

from .errors import ConfigError
from .layers import PARTS, parameter_parts
from .models import build

SHORTHANDS = {"all": frozenset(PARTS), "none": frozenset(), "bn": frozenset({"gamma", "beta"})}
VALID = tuple(SHORTHANDS) + PARTS

# Named modes as the paper's figures label them, for chapters and plots.
PAPER_MODES = {
    "All": "all",
    "None": "none",
    "BN": "bn",
    "BN+S+O": "bn,shortcut,output",
    "S+O": "shortcut,output",
    "gamma/beta frozen": "all,-bn",
}


def parse_trainable(spec: str) -> tuple[frozenset[str], frozenset[str]]:
    """``"all,-bn"`` -> (parts included, parts removed), each a set of :data:`PARTS`."""
    include: set[str] = set()
    exclude: set[str] = set()
    tokens = [t.strip().lower() for t in spec.split(",") if t.strip()]
    if not tokens:
        raise ConfigError(f"empty trainable {spec!r}: use none to train nothing")
    for token in tokens:
        target, name = (exclude, token[1:]) if token.startswith("-") else (include, token)
        if name not in VALID:
            raise ConfigError(f"unknown trainable part {name!r}: choose from {', '.join(VALID)}")
        target.update(SHORTHANDS.get(name, {name}))
    if exclude and not include:  # "-bn" alone would silently mean "none"
        raise ConfigError(f"trainable {spec!r} removes parts from nothing: name what to train first (all,-bn)")
    return frozenset(include), frozenset(exclude)


def trainable_names(model: nn.Module, spec: str) -> list[str]:
    """Names of the parameters that ``spec`` trains: in an included part and in no removed one."""
    include, exclude = parse_trainable(spec)
    return [name for name, parts in parameter_parts(model).items() if parts & include and not parts & exclude]


def apply_trainable(model: nn.Module, spec: str) -> list[nn.Parameter]:
    """Freeze every parameter outside ``spec`` (``requires_grad=False``, so no gradient is ever
    computed for it) and return the trainable ones, the only ones the optimizer sees."""
    names = set(trainable_names(model, spec))
    params = []
    for name, param in model.named_parameters():
        param.requires_grad_(name in names)
        if name in names:
            params.append(param)
    return params


def canonical(spec: str, model: nn.Module) -> str:
    """A spelling-independent identity of a mode, for run addresses.

    Every parameter has one of a few kinds of part sets (``{gamma}``, ``{gamma, shortcut}``,
    ``{conv}``, ...); the sorted trainable kinds say exactly which tensors train, so
    ``bn,shortcut,output`` and ``output,shortcut,gamma,bn`` address the same run.
    """
    return _identity(spec, set(parameter_parts(model).values()))


def _identity(spec: str, kinds) -> str:
    include, exclude = parse_trainable(spec)
    trained = {parts for parts in kinds if parts & include and not parts & exclude}
    return ",".join(sorted("+".join(sorted(kind)) for kind in trained)) or "none"


@functools.lru_cache(maxsize=None)
def _part_kinds(model: str) -> frozenset[frozenset[str]]:
    """The kinds of part sets of a network named by the registry: built once, on the meta device."""
    return frozenset(parameter_parts(build(model, device="meta")).values())


@functools.lru_cache(maxsize=None)
def mode_identity(trainable: str, model: str) -> str:
    """:func:`canonical` of a mode on a network named by the registry."""
    return _identity(trainable, _part_kinds(model))


def paper_label(trainable: str, model: str) -> str:
    """The paper's name of a mode (All, BN, BN+S+O, ...) however it is spelled, else the spelling."""
    identity = mode_identity(trainable, model)
    return next((label for label, spec in PAPER_MODES.items() if mode_identity(spec, model) == identity), trainable)
