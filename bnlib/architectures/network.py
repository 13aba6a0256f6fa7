"""What a family of architectures provides (:class:`Family`) and what a parsed name is
(:class:`Network`): the registry (``bnlib.architectures``) and every family import these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from torch import nn


@dataclass(frozen=True)
class Network:
    """A parsed network name: its one canonical spelling, its family and coordinates."""

    name: str  # canonical: wrn-14-1 is resnet-14, so both name one network
    family: str
    depth: int  # the x axis of the depth figures (D: residual blocks per stage for ResNets)
    width: int  # the x axis of the width figures (W: multiplier of the base widths); 1 = not widened
    # the figures' series the name asks for: "deep" (depth sweeps) or "wide" (width sweeps);
    # wrn-14-1 is resnet-14 in the wide series, where the width sweeps start
    series: str = "deep"
    options: tuple[tuple[str, int], ...] = field(default=())  # anything else the builder needs


class Family(Protocol):
    name: str
    forms: str  # the names it takes, for error messages: "resnet-N (N = 6D+2), wrn-N-W"

    def parse(self, name: str) -> Network | None:
        """The network ``name`` (stripped, lower case) names, ``None`` if not of this family;
        raises ConfigError for a name of this family with impossible numbers."""

    def build(self, network: Network, *, normalize: bool, num_classes: int, runs: int) -> nn.Module:
        """The uninitialised network (``runs`` fused copies) from :mod:`bnlib.layers`."""

    def cost(self, network: Network) -> float:
        """Relative training cost (multiply-adds per image up to a constant), to order sweeps."""

    # Optional: ``memory(network, batch_size) -> float``, the bytes training needs, so that a
    # network that cannot fit the device is refused before anything is allocated.
