"""Every notebook's code cells run top to bottom without error (no Jupyter needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def run_notebook(path: Path) -> dict:
    namespace: dict = {}
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), path.name, "exec"), namespace)
    return namespace


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path):
    run_notebook(path)


def test_quickstart_shows_what_it_claims():
    import torch
    import torch.nn.functional as F

    namespace = run_notebook(NOTEBOOKS[0].parent / "memory_quickstart.ipynb")
    recall = F.cosine_similarity(namespace["read"], namespace["values"], dim=-1).mean()
    assert recall > 0.9
    torch.testing.assert_close(namespace["streamed"].weights[0], namespace["whole"].weights[0])
    torch.testing.assert_close(torch.cat(namespace["outputs"], 1), namespace["y"],
                               rtol=1e-5, atol=1e-5)


def test_there_is_a_notebook():
    assert NOTEBOOKS


def test_encoders_quickstart_shows_what_it_claims():
    namespace = run_notebook(NOTEBOOKS[0].parent / "encoders_quickstart.ipynb")
    assert set(namespace["stream_gaps"]) == {"mac", "mag", "mal", "lmm"}
    assert max(namespace["stream_gaps"].values()) < 1e-4
    assert namespace["past_gap"] == 0.0
    assert namespace["pad_gap"] < 1e-5
    assert namespace["pooled"].shape == (2, 32)


def test_forecasting_quickstart_shows_what_it_claims():
    import pandas as pd

    namespace = run_notebook(NOTEBOOKS[0].parent / "forecasting_quickstart.ipynb")
    forecast, train, later = namespace["forecast"], namespace["train"], namespace["later"]
    assert len(forecast) == 24
    assert forecast["date"].iloc[0] == train["date"].iloc[-1] + pd.Timedelta("1h")
    assert namespace["after_update"]["date"].iloc[0] == later["date"].iloc[-1] + \
        pd.Timedelta("1h")
    metrics = namespace["backtest"].metrics
    assert metrics["mse"] < metrics["naive_mse"]
    bands = namespace["bands"]
    assert (bands["OT_q0.1"] <= bands["OT_q0.9"]).all()
