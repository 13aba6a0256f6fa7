"""A page per network: ``book/network.ipynb`` executed by papermill for every network of a
profile, into ``book/networks/<network>.ipynb`` (generated, not committed), which the book lists
under its own part of the table of contents. ``scripts/build-book.sh`` makes them before the
book is built; ``python -m bnlib pages --profile P`` makes them alone."""

from __future__ import annotations

from pathlib import Path

from .experiments import ROOT
from .plan import Plan

TEMPLATE = ROOT / "book" / "network.ipynb"
PAGES = ROOT / "book" / "networks"


def network_pages(profile: str, out: str | Path = PAGES, runs_dir: str | None = None,
                  networks: tuple[str, ...] | None = None) -> list[Path]:
    """Execute the network page for each network of ``profile`` (or ``networks``); returns the
    pages written. Pages of other networks are removed, so the book lists what it shows."""
    import nbformat
    import papermill

    plan = Plan.from_parameters(profile, runs_dir=runs_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pages = []
    for network in networks or plan.networks():
        page = out / f"{network}.ipynb"
        papermill.execute_notebook(str(TEMPLATE), str(page), kernel_name="python3", progress_bar=False,
                                   parameters={"profile": profile, "network": network, "runs_dir": runs_dir},
                                   cwd=str(ROOT))
        # the page's title, for the table of contents (a heading printed by code is not one)
        notebook = nbformat.read(page, as_version=4)
        notebook.cells.insert(0, nbformat.v4.new_markdown_cell(f"# {network} in detail"))
        for cell in notebook.cells:  # papermill's cell of the values it was given: set-up, not reading
            tags = cell.metadata.setdefault("tags", [])
            if "injected-parameters" in tags and "remove-cell" not in tags:
                tags.append("remove-cell")
        nbformat.write(notebook, page)
        pages.append(page)
    for stale in set(out.glob("*.ipynb")) - set(pages):
        stale.unlink()
    return pages
