"""`DNADataset`, `collate_dna` and `DNADataModule`: splits, batches, augmentation, checkpoints."""

from __future__ import annotations

import gzip
from collections import Counter
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from datamodules.dna import (CharTokenizer, DNADataModule, DNADataset, KmerTokenizer,
                             collate_dna, reverse_complement)


def _random_sequences(n: int, seed: int = 0, low: int = 20, high: int = 60) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), int(rng.integers(low, high)))) for _ in range(n)]


@pytest.fixture(scope="module")
def imbalanced():
    sequences = _random_sequences(200)
    labels = ["minor" if i % 4 == 0 else "major" for i in range(200)]  # 50 / 150
    return sequences, labels


def _parts(module: DNADataModule) -> dict[str, list[str]]:
    return {role: dataset.sequences for role, dataset in module.datasets.items()}


def test_split_is_stratified_seeded_and_disjoint(imbalanced):
    sequences, labels = imbalanced
    module = DNADataModule(sequences, labels=labels, val_fraction=0.2, test_fraction=0.1, seed=3)
    module.setup("fit")
    sizes = {role: len(d) for role, d in module.datasets.items()}
    assert sizes == {"test": 20, "val": 36, "train": 144}
    assert module.classes_.tolist() == ["major", "minor"] and module.n_classes == 2
    for dataset in module.datasets.values():  # a quarter "minor" (index 1) in every part
        assert dataset.labels.mean() == pytest.approx(0.25, abs=0.01)
    parts = _parts(module)
    assert sorted(sum(parts.values(), [])) == sorted(sequences)
    lookup = dict(zip(sequences, labels))
    for dataset in module.datasets.values():  # labels follow their sequences
        assert [module.classes_[y] for y in dataset.labels] == \
            [lookup[s] for s in dataset.sequences]
    again = DNADataModule(sequences, labels=labels, val_fraction=0.2, test_fraction=0.1, seed=3)
    again.setup("fit")
    assert _parts(again) == parts
    other = DNADataModule(sequences, labels=labels, val_fraction=0.2, test_fraction=0.1, seed=4)
    other.setup("fit")
    assert _parts(other)["val"] != parts["val"]
    module.setup("test")  # idempotent: nothing re-read or re-split
    assert _parts(module) == parts


@pytest.mark.parametrize("tokenizer, shape_tail, dtype", [
    ("char", (), torch.int64), ("kmer", (), torch.int64), ("onehot", (4,), torch.float32)])
def test_batches_follow_the_contract(imbalanced, tokenizer, shape_tail, dtype):
    sequences, labels = imbalanced
    module = DNADataModule(sequences, labels=labels, tokenizer=tokenizer, k=3, max_length=32,
                           batch_size=16)
    module.setup("fit")
    assert module.n_features == (4 if tokenizer == "onehot" else 1)
    assert module.vocab_size == {"char": 10, "kmer": 7 + 64, "onehot": None}[tokenizer]
    batch = next(iter(module.train_dataloader()))
    assert set(batch) == {"inputs", "mask", "label"}
    steps = batch["mask"].shape[1]
    assert steps <= 32
    assert batch["inputs"].shape == (16, steps, *shape_tail) and batch["inputs"].dtype == dtype
    assert batch["mask"].dtype == torch.bool and batch["label"].dtype == torch.int64
    assert batch["label"].shape == (16,) and set(batch["label"].tolist()) <= {0, 1}
    lengths = batch["mask"].sum(1, keepdim=True)
    assert torch.equal(batch["mask"], torch.arange(steps) < lengths)  # trailing padding only
    assert lengths.max() == steps  # dynamic: no all-padding columns
    padded = batch["inputs"][~batch["mask"]]
    assert (padded == 0).all()
    val = next(iter(module.val_dataloader()))
    assert val["inputs"].shape[0] == 16


def test_dataloader_gives_the_expected_batch():
    module = DNADataModule(["ACGTACGT", "CCAA", "GGTTA", "TTTT"], labels=[1, 0, 1, 0],
                           predict=["ACG", "t"], val_fraction=0.0, batch_size=4, max_length=6,
                           crop="left")
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    order = [["ACGTACGT", "CCAA", "GGTTA", "TTTT"].index(s) for s in
             module.datasets["train"].sequences]
    assert order == [0, 1, 2, 3]
    expected = {("GTACGT", 1), ("CCAA", 0), ("GGTTA", 1), ("TTTT", 0)}  # left crop keeps end
    tokenizer = CharTokenizer()
    rows = {("".join("ACGTN"[i - 5] for i in row if i), int(label))
            for row, label in zip(batch["inputs"].tolist(), batch["label"])}
    assert rows == expected and batch["inputs"].shape == (4, 6)
    assert module.val_dataloader() == []
    module.setup("predict")
    predicted = next(iter(module.predict_dataloader()))
    assert predicted["inputs"].tolist() == [tokenizer.encode("ACG").tolist(), [8, 0, 0]]
    assert predicted["mask"].tolist() == [[True] * 3, [True, False, False]]
    assert predicted["label"].tolist() == [-1, -1]


def test_rc_augment_reverse_complements_about_the_right_fraction():
    sequences = _random_sequences(400, seed=5, low=30, high=31)
    tokenizer = CharTokenizer()
    for probability in (0.0, 0.3, 1.0):
        dataset = DNADataset(sequences, np.zeros(400, dtype=int), tokenizer,
                             rc_augment=probability, seed=1)
        flipped = 0
        for i, sequence in enumerate(sequences):
            ids = dataset[i]["inputs"].tolist()
            if ids == tokenizer.encode(reverse_complement(sequence)).tolist():
                flipped += 1
            else:
                assert ids == tokenizer.encode(sequence).tolist()
        assert abs(flipped / 400 - probability) < 0.07
    draws = [[DNADataset(sequences, None, tokenizer, rc_augment=0.5, seed=seed)[i]["inputs"]
              .tolist() for i in range(50)] for seed in (7, 7, 8)]
    assert draws[0] == draws[1] and draws[0] != draws[2]  # reproducible per seed


def test_rc_augment_only_in_training_and_with_kmers():
    sequences = ["AAAAAACCC"] * 40
    module = DNADataModule(sequences, labels=[0, 1] * 20, tokenizer="kmer", k=3,
                           rc_augment=1.0, val_fraction=0.25, batch_size=64)
    module.setup("fit")
    kmer = KmerTokenizer(3)
    train = next(iter(module.train_dataloader()))["inputs"]
    val = next(iter(module.val_dataloader()))["inputs"]
    assert (train == torch.from_numpy(kmer.encode(reverse_complement(sequences[0])))).all()
    assert (val == torch.from_numpy(kmer.encode(sequences[0]))).all()


def test_worker_process_loader_pickles_the_collate():
    dataset = DNADataset(["ACGT", "GG", "TTTAA"], np.array([0, 1, 0]), CharTokenizer(),
                         rc_augment=0.5)
    loader = DataLoader(dataset, batch_size=3, num_workers=1,
                        collate_fn=partial(collate_dna, pad_id=0, max_length=4))
    batch = next(iter(loader))
    assert batch["inputs"].shape == (3, 4) and batch["mask"].sum().item() == 10
    assert batch["label"].tolist() == [0, 1, 0]


def test_state_dict_round_trip_predicts_without_training_data(imbalanced):
    sequences, labels = imbalanced
    fitted = DNADataModule(sequences, labels=labels, tokenizer="kmer", k=4)
    fitted.setup("fit")
    state = fitted.state_dict()
    assert state == {"classes": ["major", "minor"], "tokenizer": "kmer", "k": 4}
    restored = DNADataModule(predict=["ACGTACGTA"], tokenizer="kmer", k=4)
    restored.load_state_dict(state)
    restored.setup("predict")
    assert restored.classes_.tolist() == ["major", "minor"]
    batch = next(iter(restored.predict_dataloader()))
    assert batch["inputs"].tolist() == [KmerTokenizer(4).encode("ACGTACGTA").tolist()]
    with pytest.raises(ValueError, match="tokenizer='kmer', k=4.*tokenizer='char'"):
        DNADataModule(tokenizer="char").load_state_dict(state)
    with pytest.raises(ValueError, match="after setup"):
        DNADataModule(sequences).classes_
    state["classes"] = ["major", "other"]
    with pytest.raises(ValueError, match="checkpoint's classes"):
        fitted.load_state_dict(state)


def test_fasta_train_and_test_share_the_label_table(tmp_path):
    rng = np.random.default_rng(2)
    ids = [f"r{i}" for i in range(30)]
    for name, chosen in (("train.fa", ids[:20]), ("test.fa.gz", ids[20:])):
        text = "".join(f">{r} some description\n{''.join(rng.choice(list('acgt'), 12))}\n"
                       for r in chosen)
        path = tmp_path / name
        if name.endswith(".gz"):
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text)
    pd.DataFrame({"id": ids, "label": [i % 3 for i in range(30)]}).to_csv(
        tmp_path / "labels.csv", index=False)
    module = DNADataModule(tmp_path / "train.fa", tmp_path / "test.fa.gz",
                           labels=tmp_path / "labels.csv", val_fraction=0.3)
    module.setup("fit")
    assert module.classes_.tolist() == [0, 1, 2]
    assert len(module.datasets["test"]) == 10 and len(module.datasets["val"]) == 6
    assert module.datasets["test"].labels.tolist() == [i % 3 for i in range(20, 30)]
    assert "train" not in module.hparams and module.hparams["tokenizer"] == "char"


def test_genomic_benchmarks_root_gives_the_test_set(tmp_path):
    for split, per_class in (("train", 6), ("test", 3)):
        for label, base in (("negative", "T"), ("positive", "A")):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                (folder / f"{label}_{i}.txt").write_text(base * (10 + i))
    module = DNADataModule(str(tmp_path), val_fraction=0.5, batch_size=2)
    module.setup("fit")
    assert module.classes_.tolist() == ["negative", "positive"]
    assert [len(module.datasets[r]) for r in ("train", "val", "test")] == [6, 6, 6]
    assert Counter(module.datasets["test"].labels.tolist()) == {0: 3, 1: 3}
    assert module.hparams["train"] == str(tmp_path)
    with pytest.raises(ValueError, match="set test_fraction=0"):
        DNADataModule(str(tmp_path), test_fraction=0.2)
    with pytest.raises(ValueError, match="class folder names"):
        DNADataModule(str(tmp_path), label_from_header=r"(\w+)").setup("fit")


def test_datamodule_errors(imbalanced):
    sequences, labels = imbalanced
    with pytest.raises(ValueError, match="class 'rare' has only 1 sequence.*add examples"):
        DNADataModule(sequences[:11], labels=["rare"] + ["common"] * 10).setup("fit")
    with pytest.raises(ValueError, match=r"test data has label\(s\) \['new'\] that are not "
                                         r"among the classes"):
        DNADataModule(pd.DataFrame({"sequence": sequences[:20], "label": labels[:20]}),
                      pd.DataFrame({"sequence": ["ACGT"], "label": ["new"]})).setup("fit")
    with pytest.raises(ValueError, match="training data has no labels.*label_from_header"):
        DNADataModule(sequences).setup("fit")
    with pytest.raises(ValueError, match="mix types"):
        DNADataModule(sequences[:4], labels=[1, "a", 1, "a"], val_fraction=0).setup("fit")
    with pytest.raises(ValueError, match="stage 'predict' needs predict="):
        DNADataModule(sequences, labels=labels).setup("predict")
    with pytest.raises(ValueError, match="cannot split 4 sequences"):
        DNADataModule(sequences[:4], labels=[0, 1, 0, 1], val_fraction=0.2).setup("fit")
    for bad in ({"val_fraction": 1.0}, {"tokenizer": "bpe"}, {"k": 0}, {"max_length": 0},
                {"crop": "middle"}, {"rc_augment": 1.5}, {"batch_size": 0},
                {"val_fraction": 0.6, "test_fraction": 0.4}, {"ambiguity": "soft"}):
        with pytest.raises(ValueError):
            DNADataModule(sequences, labels=labels, **bad)
    with pytest.raises(TypeError, match="DNATokenizer"):
        DNADataset(["ACGT"], None, "char")
    with pytest.raises(ValueError, match="integer class indices"):
        DNADataset(["ACGT"], np.array(["a"]), CharTokenizer())
    with pytest.raises(ValueError, match="non-empty list"):
        collate_dna([], pad_id=0)


def test_table_train_with_fasta_test_labelled_from_headers(tmp_path):
    """A side rule for FASTA labels does not apply to a table beside it."""
    rng = np.random.default_rng(0)
    sequences = ["".join(rng.choice(list("ACGT"), size=20)) for _ in range(40)]
    table = tmp_path / "train.csv"
    pd.DataFrame({"sequence": sequences, "label": ["a", "b"] * 20}).to_csv(table, index=False)
    fasta = tmp_path / "test.fa"
    fasta.write_text("".join(f">s{i} label={'ab'[i % 2]}\n{sequences[i]}\n" for i in range(6)))
    data = DNADataModule(str(table), test=str(fasta), label_from_header=r"label=(\w+)",
                         val_fraction=0.25)
    data.setup("fit")
    assert list(data.classes_) == ["a", "b"]
    assert [int(data.datasets["test"][i]["label"]) for i in range(6)] == [0, 1] * 3
