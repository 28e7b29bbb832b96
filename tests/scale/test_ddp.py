"""``strategy=ddp`` with two CPU processes (gloo) against one process on the same global
batch."""

import json
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).with_name("ddp_fit.py")


def run(out: Path, mode: str, kind: str = "window") -> None:
    completed = subprocess.run([sys.executable, str(SCRIPT), str(out), mode, kind],
                               capture_output=True, text=True, timeout=600,
                               env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert completed.returncode == 0, completed.stderr[-3000:]


def test_ddp_on_two_cpu_processes_equals_one_process(tmp_path):
    run(tmp_path, "ddp")
    run(tmp_path, "single")
    ranks = [json.loads((tmp_path / f"ddp_rank{rank}.json").read_text()) for rank in (0, 1)]
    single = json.loads((tmp_path / "single_rank0.json").read_text())
    # Both ranks trained every step, on half of each global batch.
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["batches"] for r in ranks] == [single["batches"]] * 2
    for step, whole in enumerate(single["origins"]):  # the two halves make the global batch
        assert sorted(ranks[0]["origins"][step] + ranks[1]["origins"][step]) == sorted(whole)
    # torchmetrics synchronised the validation metric: every rank reports the global value.
    assert ranks[0]["val_mse"] == ranks[1]["val_mse"]
    # One checkpoint, written once (by rank 0).
    assert len(list((tmp_path / "checkpoints_ddp").iterdir())) == 1
    # Averaged gradients of two half batches = the gradient of the whole batch: the weights
    # agree with single-process training to float32 reduction order.
    ddp = torch.load(tmp_path / "ddp_weights.pt", weights_only=True)
    one = torch.load(tmp_path / "single_weights.pt", weights_only=True)
    assert ddp.keys() == one.keys()
    for name in one:
        torch.testing.assert_close(ddp[name], one[name], rtol=1e-4, atol=1e-5)
    assert abs(ranks[0]["val_mse"] - single["val_mse"]) < 1e-5 * single["val_mse"] + 1e-6


def test_long_memory_ddp_shards_lanes_and_equals_one_process(tmp_path):
    """mode="stream": each rank reads half of the lanes, segment after segment, with its own
    memory state; the averaged gradients equal one process reading all lanes."""
    run(tmp_path, "ddp", "stream")
    run(tmp_path, "single", "stream")
    ranks = [json.loads((tmp_path / f"ddp_rank{rank}.json").read_text()) for rank in (0, 1)]
    single = json.loads((tmp_path / "single_rank0.json").read_text())
    assert [r["batches"] for r in ranks] == [single["batches"]] * 2
    for step, lanes in enumerate(single["origins"]):
        halves = [tuple(lane) for rank in ranks for lane in rank["origins"][step]]
        assert sorted(halves) == sorted(tuple(lane) for lane in lanes)
        assert set(map(tuple, ranks[0]["origins"][step])).isdisjoint(
            map(tuple, ranks[1]["origins"][step]))
    assert ranks[0]["val_mse"] == ranks[1]["val_mse"]
    ddp = torch.load(tmp_path / "ddp_weights.pt", weights_only=True)
    one = torch.load(tmp_path / "single_weights.pt", weights_only=True)
    for name in one:
        torch.testing.assert_close(ddp[name], one[name], rtol=1e-4, atol=1e-5)
