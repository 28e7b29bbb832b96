"""benchmarks/genomic_baselines.py: protocol split, k-mer counting, and the DNA baselines."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.datasets import nontata_promoters_path

ROOT = Path(__file__).resolve().parents[1]
DNA = nontata_promoters_path()  # the embedded copy of shared/data/dna (same bytes)

_spec = importlib.util.spec_from_file_location("genomic_baselines",
                                               ROOT / "benchmarks" / "genomic_baselines.py")
gb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gb)


def naive_kmer_counts(seq: str, k: int) -> np.ndarray:
    index = {"".join(p): i for i, p in enumerate(itertools.product("ACGT", repeat=k))}
    out = np.zeros(4 ** k, dtype=np.int64)
    seq = seq.upper()
    for i in range(len(seq) - k + 1):
        word = seq[i:i + k]
        if word in index:           # skips any k-mer with N (or another character)
            out[index[word]] += 1
    return out


def planted_motif_task(n: int = 800, length: int = 100, motif: str = "TATAAA", copies: int = 3,
                       seed: int = 0):
    """Uniform random sequences; label 1 iff the motif is planted (``copies`` times, at random
    positions) - negatives are redrawn until they do not contain it by chance.  Three copies,
    because the Genomic Benchmarks CNN (position-specific dense head) needs far more than a few
    hundred examples to find a single 6-mer anywhere in 100 nt (measured: ~50-60 % with one
    copy and 400 sequences, 86-95 % with three copies and 800 sequences over three seeds)."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for i in range(n):
        label = i % 2
        while True:
            s = list(rng.choice(list("ACGT"), size=length))
            if label:
                for _ in range(copies):
                    pos = int(rng.integers(0, length - len(motif) + 1))
                    s[pos:pos + len(motif)] = motif
            s = "".join(s)
            if label or motif not in s:
                break
        seqs.append(s)
        labels.append(label)
    return seqs, np.array(labels)


# ------------------------------------------------------------------------------------- split

def test_protocol_split_on_the_real_file():
    from sklearn.model_selection import train_test_split

    seqs, labels = gb.load_csv(str(DNA))
    assert len(seqs) == 9034 and set(np.unique(labels)) == {0, 1}
    split = gb.protocol_split(seqs, labels)
    assert [len(split[k][0]) for k in ("train", "val", "test")] == [6504, 723, 1807]
    for part, y in split.values():
        assert len(part) == len(y)
        assert abs(y.mean() - labels.mean()) < 0.002          # stratified
    parts = [set(split[k][0]) for k in ("train", "val", "test")]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert len(parts[0] | parts[1] | parts[2]) == 9034       # sequences are unique in the file
    # the test part is exactly the protocol's train_test_split(random_state=0)
    _, s_test, _, y_test = train_test_split(seqs, labels, test_size=0.2, stratify=labels,
                                            random_state=0)
    assert split["test"][0] == s_test and np.array_equal(split["test"][1], y_test)
    # the sequence-to-label pairing survives the split
    lookup = dict(zip(seqs, labels))
    assert all(lookup[s] == y for s, y in zip(*split["val"]))


def test_protocol_split_depends_on_the_seed():
    seqs, labels = planted_motif_task(n=100, length=20, copies=1)
    a, b = gb.protocol_split(seqs, labels, seed=0), gb.protocol_split(seqs, labels, seed=1)
    assert a["test"][0] != b["test"][0]
    assert gb.protocol_split(seqs, labels)["test"][0] == a["test"][0]


# ------------------------------------------------------------------------------- k-mer counts

def test_kmer_counts_match_a_naive_count_including_n_and_ragged_lengths():
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list("ACGTN"), p=[0.24, 0.24, 0.24, 0.24, 0.04],
                               size=int(rng.integers(3, 60)))) for _ in range(12)]
    seqs += ["ACGTNACGTA", "acgtacgt", "AAAA", "NNNNNNN", "AC"]
    for k in (1, 2, 4, 5, 6):
        got = gb.kmer_counts(seqs, k)
        assert got.shape == (len(seqs), 4 ** k)
        for row, s in zip(got, seqs):
            np.testing.assert_array_equal(row, naive_kmer_counts(s, k))


def test_kmer_counts_column_order_and_equal_length_fast_path():
    seqs = ["AAAAAA", "TTTTTT", "ACGTNA"]           # equal lengths: the vectorised fast path
    counts = gb.kmer_counts(seqs, 2)
    assert counts[0, 0] == 5 and counts[0].sum() == 5          # AA is column 0
    assert counts[1, 15] == 5 and counts[1].sum() == 5         # TT is column 4**2 - 1
    assert counts[2].sum() == 3 and counts[2, 1] == counts[2, 6] == counts[2, 11] == 1  # AC CG GT


def test_kmer_features_are_frequencies_per_k():
    seqs, _ = planted_motif_task(n=10, length=40, copies=1)
    seqs[0] = seqs[0][:10] + "N" + seqs[0][11:]
    x = gb.kmer_features(seqs, ks=(4, 5, 6))
    assert x.shape == (10, 256 + 1024 + 4096)
    np.testing.assert_allclose(x[:, :256].sum(1), 1.0)
    np.testing.assert_allclose(x[:, 256:1280].sum(1), 1.0)
    np.testing.assert_allclose(x[:, 1280:].sum(1), 1.0)
    np.testing.assert_allclose(x[0, :256], naive_kmer_counts(seqs[0], 4) / (40 - 3 - 4))


def test_one_hot_zeroes_n_and_padding():
    x = gb.one_hot(["ACGTN", "TG"], length=6)
    assert x.shape == (2, 4, 6) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0].argmax(0)[:4], [0, 1, 2, 3])
    np.testing.assert_array_equal(x.sum(1), [[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]])
    assert x[1, 3, 0] == 1 and x[1, 2, 1] == 1


def test_small_cnn_architecture_shapes():
    for length in (57, 100, 251):           # 57 is the shortest input three blocks accept
        model = gb.SmallCNN(length)
        assert model(torch.zeros(3, 4, length)).shape == (3,)
    convs = [m for m in gb.SmallCNN(251).modules() if isinstance(m, torch.nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [
        (4, 16, 8), (16, 8, 8), (8, 4, 8)]
    with pytest.raises(ValueError):
        gb.SmallCNN(56)


# ---------------------------------------------------------------------------------- baselines

@pytest.fixture(scope="module")
def motif_split():
    seqs, labels = planted_motif_task(n=800, length=100, copies=3)
    return gb.protocol_split(seqs, labels)


def test_kmer_logistic_regression_finds_a_planted_motif(motif_split):
    r = gb.kmer_logistic_regression(motif_split)
    assert set(r) == {"accuracy", "mcc", "auroc", "train_seconds", "params"}
    assert r["accuracy"] >= 0.9 and r["auroc"] >= 0.95 and r["mcc"] >= 0.8, r
    assert r["params"]["C"] in gb.C_GRID and len(r["params"]["grid"]) == len(gb.C_GRID)
    fixed = gb.kmer_logistic_regression(motif_split, ks=(6,), C=0.1)
    assert fixed["params"]["C"] == 0.1 and fixed["params"]["n_features"] == 4096
    assert fixed["accuracy"] >= 0.9 and fixed["params"]["grid"] == {}


def test_small_cnn_finds_a_planted_motif_and_is_seeded(motif_split):
    threads = torch.get_num_threads()
    r = gb.small_cnn(motif_split, epochs=20, batch_size=32, lr=3e-3, seed=0, threads=1)
    assert set(r) == {"accuracy", "mcc", "auroc", "train_seconds", "params", "epochs_run"}
    assert r["accuracy"] >= 0.75 and r["auroc"] >= 0.85, r
    assert 1 <= r["params"]["best_epoch"] <= r["epochs_run"] <= 20
    assert torch.get_num_threads() == threads
    again = gb.small_cnn(motif_split, epochs=20, batch_size=32, lr=3e-3, seed=0, threads=1)
    assert again["accuracy"] == r["accuracy"] and again["auroc"] == r["auroc"]


def two_motif_xor_task(n: int = 600, length: int = 80, motifs=("GGC", "TTA"), seed: int = 0):
    """Label 1 iff exactly one of two motifs is planted (XOR): every single k-mer count has the
    same mean in both classes, so a linear model on counts is at chance; a model that combines
    k-mers is not."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for i in range(n):
        planted = (i % 2 == 1, (i // 2) % 2 == 1)
        while True:
            s = "".join(rng.choice(list("ACGT"), size=length))
            if not any(m in s for m in motifs):
                break
        s = list(s)
        for motif, present in zip(motifs, planted):
            for _ in range(2 if present else 0):
                pos = int(rng.integers(0, length - len(motif) + 1))
                s[pos:pos + len(motif)] = motif
        seqs.append("".join(s))
        labels.append(int(planted[0] != planted[1]))
    return seqs, np.array(labels)


def test_kmer_mlp_combines_kmers_where_logistic_regression_cannot():
    split = gb.protocol_split(*two_motif_xor_task())
    threads = torch.get_num_threads()
    mlp = gb.kmer_mlp(split, ks=(3,), hidden=32, lr=3e-3, epochs=40, patience=40, threads=1)
    assert set(mlp) == {"accuracy", "mcc", "auroc", "train_seconds", "params", "epochs_run"}
    assert torch.get_num_threads() == threads
    linear = gb.kmer_logistic_regression(split, ks=(3,))
    assert linear["accuracy"] < 0.65, linear           # the XOR defeats a linear model
    assert mlp["accuracy"] >= 0.8 and mlp["auroc"] >= 0.85, mlp
    again = gb.kmer_mlp(split, ks=(3,), hidden=32, lr=3e-3, epochs=40, patience=40, threads=1)
    assert again["accuracy"] == mlp["accuracy"] and again["auroc"] == mlp["auroc"]


def test_kmer_random_forest_finds_a_planted_motif(motif_split):
    r = gb.kmer_random_forest(motif_split, ks=(6,), n_estimators=50)
    assert set(r) == {"accuracy", "mcc", "auroc", "train_seconds", "params"}
    assert r["accuracy"] >= 0.9 and r["auroc"] >= 0.95, r
    assert r["params"]["n_features"] == 4096 and 0.5 < r["params"]["val_accuracy"] <= 1.0


def test_kmer_mlp_handles_several_classes(motif_split):
    sequences = [*motif_split["train"][0], *motif_split["val"][0], *motif_split["test"][0]]
    labels = np.arange(len(sequences)) % 3          # random labels: only the shapes matter
    split = gb.protocol_split(sequences, labels)
    result = gb.kmer_mlp(split, ks=(2,), hidden=8, epochs=2, threads=1)
    assert 0.0 <= result["accuracy"] <= 1.0 and result["epochs_run"] == 2


def test_main_prints_a_table(tmp_path, capsys):
    seqs, labels = planted_motif_task(n=200, length=60, copies=1)
    path = tmp_path / "dna.csv.gz"
    import pandas as pd
    pd.DataFrame({"sequence": seqs, "label": labels, "split": "test"}).to_csv(path, index=False)
    assert gb.main(["--data", str(path), "--epochs", "2", "--threads", "1",
                    "--random-forest"]) == 0
    out = capsys.readouterr().out
    assert "accuracy %" in out and "k-mer (4-6) + LogReg" in out and "CNN" in out
    assert "k-mer (1-6) + MLP" in out and "k-mer (6) + forest" in out


def test_dna_datamodule_split_is_the_protocol_split():
    """configs/dna_promoters.yaml (DNADataModule, test_fraction=0.2, val_fraction=0.1, seed 0)
    trains and tests on exactly the benchmark's parts."""
    from datamodules import DNADataModule, load_nontata_promoters
    sequences, labels = load_nontata_promoters("lists")
    split = gb.protocol_split(sequences, labels)
    data = DNADataModule("nontata_promoters", test_fraction=0.2, val_fraction=0.1, seed=0)
    data.setup("fit")
    for role in ("train", "val", "test"):
        assert sorted(data.datasets[role].sequences) == sorted(split[role][0])
