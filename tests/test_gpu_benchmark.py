"""``benchmarks/gpu.py`` runs end to end (tiny sizes, on the CPU) and writes its results
file: the same code a GPU run takes, so that run can be one prepared call."""

from __future__ import annotations

import json

from benchmarks.gpu import main


def test_the_gpu_benchmark_writes_every_section(tmp_path, capsys):
    out = tmp_path / "results.json"
    assert main(["--smoke", "--device", "cpu", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["environment"]["device"] == "cpu"
    records = results["records"]
    memory = {r["implementation"]: r for r in records if r["section"] == "memory"}
    for implementation in ("native", "torch"):
        assert memory[implementation]["forward_tokens_per_s"] > 0
        assert memory[implementation]["train_tokens_per_s"] > 0
    assert "triton" in memory  # measured with Triton's interpreter, or its error recorded
    estimators = {r["estimator"]: r for r in records if r["section"] == "estimators"}
    assert set(estimators) == {"forecaster", "classifier"}
    for record in estimators.values():
        assert "error" not in record, record
        assert record["fit_seconds"] > 0 and record["use_seconds"] > 0
        assert record["runs_on"] == "cpu"
    configs = [r for r in records if r["section"] == "configs"]
    assert len(configs) == 2 and all(r.get("steps_done") == 2 for r in configs), configs
    assert "wrote" in capsys.readouterr().out
