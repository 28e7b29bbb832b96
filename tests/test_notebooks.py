"""The notebooks are stored executed (outputs and figures, so they render on a code host), and
a re-run in a real Jupyter kernel (nbclient) gives the outputs they store: a notebook whose code
changed without being re-run and stored (``python notebooks/run.py``) fails here, as does one
whose claims (the ``assert`` cells) no longer hold.

What "the same outputs" means: every code cell has the same outputs in the same order (stream,
result, display; consecutive prints to one stream count as one output), the same kinds of data (text, PNG, HTML), and the same text once numbers are
set aside; every number agrees within 5 % (or 1e-3 absolutely: rounding across machines).
Cells tagged ``volatile`` (a timing) are compared by kind only. Pictures are compared by
presence: a PNG must be there.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")

sys.path.insert(0, str(ROOT / "notebooks"))
from run import execute  # noqa: E402


def outputs(cell) -> list[tuple[str, tuple, str]]:
    """Each output's type, data kinds and text."""
    found = []
    for output in cell.get("outputs", []):
        kind = output["output_type"]
        if kind == "stream":
            if found and found[-1][:2] == (kind, (output["name"],)):
                # The kernel splits a cell's prints into messages as its timing goes: one
                # stream, however many messages carried it.
                found[-1] = (kind, (output["name"],), found[-1][2] + output["text"])
            else:
                found.append((kind, (output["name"],), output["text"]))
        elif kind in ("execute_result", "display_data"):
            data = output["data"]
            found.append((kind, tuple(sorted(data)), data.get("text/plain", "")))
        else:  # an error: never expected in a stored notebook
            found.append((kind, (), "".join(output.get("traceback", []))))
    return found


def same_text(stored: str, fresh: str) -> bool:
    if NUMBER.sub("#", stored) != NUMBER.sub("#", fresh):
        return False
    for a, b in zip(NUMBER.findall(stored), NUMBER.findall(fresh)):
        x, y = float(a), float(b)
        if abs(x - y) > max(1e-3, 0.05 * max(abs(x), abs(y))):
            return False
    return True


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_stored_executed_with_a_figure(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), \
        f"{path.name} is stored without running every cell: python notebooks/run.py"
    kinds = [output for cell in code for output in outputs(cell)]
    assert not [o for o in kinds if o[0] == "error"], f"{path.name} stores an error"
    assert any("image/png" in o[1] for o in kinds), f"{path.name} shows no figure"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_a_rerun_gives_the_stored_outputs(path):
    stored = nbformat.read(path, as_version=4)
    fresh = execute(path)  # raises on any failing cell, claims included
    pairs = [(a, b) for a, b in zip(stored.cells, fresh.cells) if a.cell_type == "code"]
    assert len(pairs) == sum(c.cell_type == "code" for c in fresh.cells)
    for index, (old, new) in enumerate(pairs):
        before, after = outputs(old), outputs(new)
        where = f"{path.name}, code cell {index + 1}"
        assert [o[:2] for o in before] == [o[:2] for o in after], \
            f"{where}: outputs {[o[:2] for o in after]} instead of the stored " \
            f"{[o[:2] for o in before]}; re-run and store it (python notebooks/run.py)"
        if "volatile" in old.metadata.get("tags", []):
            continue
        for (_, _, text_before), (_, _, text_after) in zip(before, after):
            assert same_text(text_before, text_after), \
                f"{where}: stored {text_before[:300]!r}, a re-run gives {text_after[:300]!r}"


def test_every_notebook_is_covered():
    assert {p.name for p in NOTEBOOKS} >= {"memory_quickstart.ipynb",
                                          "encoders_quickstart.ipynb",
                                          "forecasting_quickstart.ipynb"}


def test_the_comparison_tells_a_stale_output_from_rounding():
    assert same_text("mse 0.5000 (naive 0.91)", "mse 0.5200 (naive 0.90)")  # within 5 %
    assert not same_text("mse 0.50", "mse 0.60")
    assert not same_text("recall 0.99", "recall: 0.99")  # the words changed
    assert not same_text("3 rows", "3 rows 4")
    stale = nbformat.v4.new_code_cell("print(1)")
    stale.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    empty = nbformat.v4.new_code_cell("print(1)")
    assert [o[:2] for o in outputs(stale)] != [o[:2] for o in outputs(empty)]
