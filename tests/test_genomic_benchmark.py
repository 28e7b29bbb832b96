"""benchmarks/genomic.py end to end on a small three-class CSV with string labels."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def test_any_sequence_label_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(150):
        label = ["plain", "gattaca", "ccggaat"][i % 3]
        sequence = "".join(rng.choice(list("ACGT"), size=64))
        if label != "plain":
            at = int(rng.integers(0, 57))
            sequence = sequence[:at] + label.upper() + sequence[at + 7:]
        rows.append((sequence, label, "x"))
    data = tmp_path / "three.csv.gz"
    pd.DataFrame(rows, columns=["sequence", "label", "other"]).to_csv(data, index=False)
    out = tmp_path / "figures.json"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "genomic.py"), "--data", str(data),
         "--rows", "titans", "titans-no-kmers", "--seeds", "0", "1", "--set", "max_epochs=1",
         "dim=16", "pretrain=1", "--cnn-epochs", "1", "--threads", "2", "--jobs", "2", "--out",
         str(out)],
        capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "classes ['ccggaat', 'gattaca', 'plain']" in completed.stdout
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"titans", "titans: k-mer stage", "titans-no-kmers", "cnn",
                            "kmer-logreg", "kmer-mlp", "kmer-forest"}
    for name, row in results.items():
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["auroc"] <= 1 and -1 <= row["mcc"] <= 1
        runs = [run["accuracy"] for run in row["runs"]]
        assert len(runs) == (1 if name in ("kmer-logreg", "kmer-forest") else 2)
        assert row["accuracy"] == np.mean(runs)
        assert row["accuracy_std"] == (np.std(runs, ddof=1) if len(runs) > 1 else 0.0)
    assert "default Titans above every k-mer model" in completed.stdout
    assert results["kmer-logreg"]["accuracy"] > 0.5  # three classes: chance is 1/3
