"""Execute the notebooks with a real Jupyter kernel (nbclient) and store them with their
outputs, so they render on a code host without running:

    python notebooks/run.py              # every notebook, in place
    python notebooks/run.py forecasting_quickstart.ipynb

``tests/test_notebooks.py`` re-runs them the same way and fails when a stored notebook is out
of date with its code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
TIMEOUT = 600  # seconds per cell


def execute(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path`` executed top to bottom in a fresh ``python3`` kernel, run from
    the notebooks folder, with matplotlib's inline backend."""
    notebook = nbformat.read(path, as_version=4)
    _, normal = nbformat.validator.normalize(notebook)  # every cell gets its id
    notebook = nbformat.from_dict(normal)
    # the kernel's own log (a local TCP connection warning) stays out of the way
    client = NotebookClient(notebook, timeout=TIMEOUT, kernel_name="python3",
                            extra_arguments=["--log-level=ERROR"],
                            resources={"metadata": {"path": str(HERE)}})
    client.execute()
    return notebook


def main(names: list[str]) -> None:
    paths = [HERE / name for name in names] or sorted(HERE.glob("*.ipynb"))
    for path in paths:
        notebook = execute(path)
        nbformat.write(notebook, path)
        print(f"stored {path.name} executed")


if __name__ == "__main__":
    main(sys.argv[1:])
