"""Execute chapters in the smoke profile and keep only the outputs nbval checks.

nbval (``--nbval-lax``) compares the cells marked ``# NBVAL_CHECK_OUTPUT`` with their stored
output; every other output is dropped so notebooks stay small and free of stale results.
Run after editing a chapter:  BNLIB_PROFILE=smoke .venv/bin/python scripts/store_outputs.py [names]
"""

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
MARK = "# NBVAL_CHECK_OUTPUT"


def store(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=-1, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:
        if cell.cell_type == "code":
            if MARK not in cell.source:
                cell.outputs = []
                cell.execution_count = None
            cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    print("stored", path)


if __name__ == "__main__":
    os.environ.setdefault("BNLIB_PROFILE", "smoke")
    names = sys.argv[1:]
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        if not names or path.stem in names:
            store(path)
