"""Clean the chapters' outputs, keeping only those nbval checks.

The notebooks in chapters/ are the book's source. They are committed without outputs, except
in cells tagged ``nbval-check-output``, whose stored output ``pytest --nbval-lax`` compares with
a fresh run (e.g. chapter 2's Table 1). Cleaning also drops the other cells' execution counts,
per-cell timings and saved widget state, so a chapter's diff shows only what was edited.

    .venv/bin/python scripts/clean_outputs.py [chapter ...]            # after editing in Jupyter
    .venv/bin/python scripts/clean_outputs.py --execute [chapter ...]  # re-store checked outputs

A chapter is named by its file stem (``02-architectures``); none names every chapter.
``--execute`` first runs the chapter in the smoke profile (the one the tests use), so the
outputs kept are those nbval will compare against.
"""

import argparse
import os
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CHECKED = "nbval-check-output"


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop the outputs and execution counts of every cell not tagged nbval-check-output.

    A checked cell keeps both: nbval compares only cells whose stored execution count is set
    (it reports "Unrun reference cell has outputs" otherwise).
    """
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code" and CHECKED not in cell.metadata.get("tags", []):
            cell.outputs = []
            cell.execution_count = None
    return nb


def execute(nb: nbformat.NotebookNode, path: Path) -> None:
    from nbclient import NotebookClient

    os.environ["BNLIB_PROFILE"] = os.environ.get("BNLIB_PROFILE", "smoke")  # the kernel inherits it
    NotebookClient(nb, timeout=-1, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="file stems under chapters/ (default: every chapter)")
    parser.add_argument("--execute", action="store_true",
                        help="run each chapter first (smoke profile unless BNLIB_PROFILE says otherwise)")
    args = parser.parse_args(argv)
    paths = sorted((ROOT / "chapters").glob("*.ipynb"))
    unknown = set(args.chapters) - {p.stem for p in paths}
    if unknown:
        parser.error(f"no such chapter: {', '.join(sorted(unknown))}")
    for path in paths:
        if args.chapters and path.stem not in args.chapters:
            continue
        nb = nbformat.read(path, as_version=4)
        if args.execute:
            execute(nb, path)
        nbformat.write(clean(nb), path)
        print("cleaned", path.relative_to(ROOT))


if __name__ == "__main__":
    main()
