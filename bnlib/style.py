"""The book's one visual language: colours and names of modes and initialisations, markers of
networks, and one plotly template. Every figure of :mod:`bnlib.figures` draws with these, so a
mode has one colour and one name in every chapter (the paper's: All blue, BN red, None green).
"""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

# Training modes by their paper names (bnlib.freezing.PAPER_MODES) and Appendix E's variants:
# BatchNorm-only (γ/β/N) is BN's red everywhere; its ablations are shades of it.
MODE_COLOURS = {
    "All": "#1f77b4", "BN": "#d62728", "None": "#2ca02c", "BN+S+O": "#e6a100", "S+O": "#7f7f7f",
    "gamma/beta frozen": "#9467bd", "γ/β frozen": "#9467bd",
    "γ/β/N": "#d62728", "γ/N": "#ff7f7f", "β/N": "#8c1c13", "γ/β": "#f4a582",
}
MODE_NAMES = {"gamma/beta frozen": "γ/β frozen"}  # how a label reads on a page

# Initialisations as the paper writes them (Section 4, Appendices C and D).
BN_INIT_NAMES = {"uniform": "γ~U[0,1], β=0", "ones": "γ=1", "symmetric": "γ~U[-1,1]", "ones-beta-one": "γ=β=1"}
FEATURE_INIT_NAMES = {"he-normal": "He normal", "he-uniform": "He uniform", "binary": "binary ±σ",
                      "orthogonal": "orthogonal"}

# Networks are told apart by marker (and by dash in line plots), modes by colour.
MARKERS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon", "pentagon",
           "triangle-down", "hourglass", "bowtie", "circle-open")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")

TEMPLATE = "bnlib"
_template = go.layout.Template(pio.templates["plotly_white"])
# y axes reach down to 0: an axis cut at 45 makes a 2-point gap look like a collapse
_template.layout.update(font={"size": 13}, hovermode="closest", xaxis={"zeroline": False},
                        yaxis={"zeroline": False, "rangemode": "tozero"})
pio.templates[TEMPLATE] = _template


def mode_colour(label: str) -> str | None:
    return MODE_COLOURS.get(str(label))


def mode_name(label: str) -> str:
    return MODE_NAMES.get(str(label), str(label))


def marker(index: int) -> str:
    return MARKERS[index % len(MARKERS)]


def dash(index: int) -> str:
    return DASHES[index % len(DASHES)]


def init_name(kind: str, name: str) -> str:
    """``init_name("bn_init", "ones") == "γ=1"``; a name with no paper spelling reads as is."""
    return {"bn_init": BN_INIT_NAMES, "feature_init": FEATURE_INIT_NAMES}.get(kind, {}).get(name, name)
