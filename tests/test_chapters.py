"""The chapters are notebooks edited in Jupyter: each is committed clean (outputs and execution
counts only in the cells nbval checks), with one papermill parameters cell, one set-up call into
bnlib.book, nbval's cell tags instead of marker comments, and its plumbing hidden from readers."""

import copy
import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
CHECKED = "nbval-check-output"
SETUP_CALL = "book.setup("
HIDDEN = {"remove-cell", "remove-input", "hide-input", "hide-cell"}  # Jupyter Book 1's tags


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def problems(nb) -> list[str]:
    """What is wrong with a chapter notebook; empty when it is as committed chapters must be."""
    found = []
    code = [c for c in nb.cells if c.cell_type == "code"]
    parameters = [i for i, c in enumerate(nb.cells) if "parameters" in tags(c)]
    if len(parameters) != 1:
        found.append(f"{len(parameters)} cells tagged 'parameters' (papermill needs exactly one)")
    setup = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and SETUP_CALL in c.source]
    if len(setup) != 1:
        found.append(f"{len(setup)} code cells call {SETUP_CALL}...) (expected one)")
    elif parameters and setup[0] < parameters[0]:
        found.append(f"{SETUP_CALL}...) comes before the parameters cell")
    for i in sorted(set(parameters + setup)):
        if not HIDDEN & set(tags(nb.cells[i])):
            found.append(f"cell {i} (parameters or set-up) has no tag hiding it from the book")
    for i, cell in enumerate(nb.cells):
        if "NBVAL_CHECK_OUTPUT" in cell.source:
            found.append(f"cell {i} has an NBVAL_CHECK_OUTPUT comment (tag it {CHECKED!r} instead)")
    for i, cell in enumerate(code):
        if CHECKED not in tags(cell):
            if cell.execution_count is not None:
                found.append(f"code cell {i} has an execution count")
            if cell.outputs:
                found.append(f"code cell {i} has stored outputs but is not tagged {CHECKED!r}")
        elif not cell.outputs:
            found.append(f"code cell {i} is tagged {CHECKED!r} but has no stored output to check")
        elif cell.execution_count is None:  # nbval: "Unrun reference cell has outputs"
            found.append(f"code cell {i} is tagged {CHECKED!r} but has no execution count (nbval fails it as unrun)")
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != "python3":
        found.append(f"kernelspec name is {kernel!r}, not 'python3'")
    return found


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_clean(path):
    assert problems(nbformat.read(path, as_version=4)) == []


def test_chapter_2_checks_table_1():
    nb = nbformat.read(ROOT / "chapters" / "02-architectures.ipynb", as_version=4)
    checked = [c for c in nb.cells if CHECKED in tags(c)]
    assert len(checked) == 2 and "resnet-110" in "".join(o.get("text", "") for o in checked[0].outputs)


def break_copy(nb, how: str):
    nb = copy.deepcopy(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    checked = next(c for c in code if CHECKED in tags(c))
    plain = next(c for c in code if not {CHECKED, "parameters"} & set(tags(c)))
    parameters = next(c for c in code if "parameters" in tags(c))
    setup = next(c for c in code if SETUP_CALL in c.source)
    if how == "two parameters cells":
        plain.metadata["tags"] = ["parameters"]
    elif how == "no parameters cell":
        parameters.metadata["tags"] = ["remove-cell"]
    elif how == "unchecked output":
        plain.outputs = [nbformat.v4.new_output("stream", name="stdout", text="stale\n")]
    elif how == "execution count":
        plain.execution_count = 7
    elif how == "checked cell lost its output":
        checked.outputs = []
    elif how == "checked cell lost its execution count":
        checked.execution_count = None
    elif how == "marker comment":
        checked.source = "# NBVAL_CHECK_OUTPUT\n" + checked.source
    elif how == "kernel":
        nb.metadata["kernelspec"]["name"] = "python3.11"
    elif how == "no setup call":
        setup.source = setup.source.replace(SETUP_CALL, "Plan.from_parameters(")
    elif how == "set-up shown":
        setup.metadata["tags"] = []
    return nb


@pytest.mark.parametrize("how, message", [
    ("two parameters cells", "2 cells tagged 'parameters'"),
    ("no parameters cell", "0 cells tagged 'parameters'"),
    ("unchecked output", "has stored outputs but is not tagged"),
    ("execution count", "has an execution count"),
    ("checked cell lost its output", "has no stored output to check"),
    ("checked cell lost its execution count", "has no execution count (nbval fails it as unrun)"),
    ("marker comment", "has an NBVAL_CHECK_OUTPUT comment"),
    ("kernel", "kernelspec name"),
    ("no setup call", "0 code cells call book.setup("),
    ("set-up shown", "no tag hiding it"),
])
def test_a_broken_chapter_is_caught(how, message):
    nb = nbformat.read(ROOT / "chapters" / "02-architectures.ipynb", as_version=4)
    assert problems(nb) == []
    assert any(message in problem for problem in problems(break_copy(nb, how)))


def test_clean_outputs_keeps_only_checked_outputs():
    spec = importlib.util.spec_from_file_location("clean_outputs", ROOT / "scripts" / "clean_outputs.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    nb = nbformat.read(ROOT / "chapters" / "02-architectures.ipynb", as_version=4)
    dirty = break_copy(break_copy(nb, "unchecked output"), "execution count")
    dirty.cells[-1].metadata["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00"}
    dirty.metadata["widgets"] = {"state": {}}
    assert problems(dirty) != []
    assert tool.clean(dirty) == nb  # stored Table 1 kept, everything else as committed


def unlinked_references(page: str, text: str) -> list[str]:
    """References in ``text`` (a markdown cell of chapter ``page``) to a chapter, or to a figure
    or table shown in another chapter, that are not links (book.CHAPTERS says where each is)."""
    import re

    from bnlib.book import CHAPTERS

    text = re.sub(r"\[[^\]]*\]\([^)]*\)", "", text)  # what is already a link
    found = [m.group(0) for m in re.finditer(r"\bchapters?\s+\d+\b", text, re.I)]
    for m in re.finditer(r"\b(Figures?|Tables?)\s+(A?\d+)((?:,\s*A?\d+)*(?:,?\s+and\s+A?\d+)?)", text):
        numbers = [m.group(2), *re.findall(r"A?\d+", m.group(3))]
        where = {CHAPTERS.get(f"{m.group(1).rstrip('s')} {n}") for n in numbers}
        if where - {page, None}:
            found.append(m.group(0))
    return found


def test_every_reference_to_another_chapter_is_a_link():
    assert unlinked_references("07-clamping", "see chapter 4 and Figures 2 and 5, Table 1 and Figure 7") == [
        "chapter 4", "Figures 2 and 5", "Table 1"]
    assert unlinked_references("07-clamping", "[Figure 2](04-training-only-batchnorm.ipynb) and [chapter 4](x)") == []
    pages = [*CHAPTERS, *(ROOT / "book").glob("*.ipynb")]
    found = {p.stem: [ref for cell in nbformat.read(p, as_version=4).cells if cell.cell_type == "markdown"
                      for ref in unlinked_references(p.stem, cell.source)] for p in pages}
    assert {page: refs for page, refs in found.items() if refs} == {}

