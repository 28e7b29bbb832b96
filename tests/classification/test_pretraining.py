"""Next-base pre-training: targets, causality of the strided trunk, learning with a real
Trainer on an unlabelled datamodule, and loading the trunk into a classifier."""

import numpy as np
import pytest
import torch
import lightning.pytorch as pl

from datamodules import DNADataModule
from datamodules.dna import CharTokenizer, pad_batch
from titans_seq import ClassificationModule, PretrainingModule, TitansClassifier
from titans_seq.classification import SequenceTrunk
from titans_seq.classification.kmers import base_codes

TINY = dict(dim=16, depth=1, memory_heads=2, chunk_size=4, stem_kernel=4)


def periodic_dna(seed: int, n: int, period: str = "ACGGTCATTG"):
    """Rotations of one period repeated: every next base follows from the previous ones."""
    rng = np.random.default_rng(seed)
    return [(period * 8)[start:start + length] for start, length in
            zip(rng.integers(0, len(period), n), rng.integers(30, 50, n))]


@pytest.mark.parametrize("stride", [1, 3])
def test_targets_are_the_next_block(stride):
    module = PretrainingModule(tokenizer="char", stem_stride=stride, **TINY)
    sequences = ["ACGTACGTANC", "GATTA"]
    inputs, mask = pad_batch([CharTokenizer().encode(s) for s in sequences])
    targets = module.net.targets(base_codes(inputs, mask, "char"))
    assert targets.shape == (2, -(-11 // stride), stride)
    for row, sequence in enumerate(sequences):
        for block in range(targets.shape[1]):
            for offset in range(stride):
                position = (block + 1) * stride + offset
                base = sequence[position] if position < len(sequence) else "N"
                expected = "ACGT".index(base) if base in "ACGT" else -1
                assert int(targets[row, block, offset]) == expected


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_strided_trunk_is_causal(stride):
    torch.manual_seed(0)
    trunk = SequenceTrunk(vocab_size=10, stem_stride=stride, dropout=0.0, **TINY).eval()
    inputs = torch.randint(5, 9, (1, 24))
    mask = torch.ones_like(inputs, dtype=torch.bool)
    before, _ = trunk(inputs, mask)
    for position in (0, 7, 13, 23):
        changed = inputs.clone()
        changed[0, position] = 5 + (int(inputs[0, position]) - 4) % 4
        after, _ = trunk(changed, mask)
        moved = (before - after).abs().amax(-1)[0] > 1e-6  # (T',)
        first = position // stride  # the first token that has read this position
        assert not moved[:first].any() and moved[first]


def test_pretraining_learns_the_next_base_on_unlabelled_fasta(tmp_path):
    fasta = tmp_path / "reads.fa"
    fasta.write_text("".join(f">read{i}\n{s}\n" for i, s in enumerate(periodic_dna(0, 96))))
    data = DNADataModule(fasta, labelled=False, val_fraction=0.25, batch_size=16)
    module = PretrainingModule(stem_stride=2, lr=1e-2, **TINY)  # shapes from the data
    trainer = pl.Trainer(max_epochs=12, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu")
    trainer.fit(module, data)
    # A constant guess gets about 0.3 here; the language is deterministic after two bases.
    assert trainer.callback_metrics["val_accuracy"] > 0.8
    assert len(data.datasets["val"]) == 24 and data.datasets["train"][0]["label"] == -1
    checkpoint = tmp_path / "pretrained.ckpt"
    trainer.save_checkpoint(checkpoint)
    classifier = ClassificationModule(n_classes=2, vocab_size=10, tokenizer="char",
                                      stem_stride=2, pretrained=str(checkpoint), **TINY)
    for name, value in module.trunk.state_dict().items():
        torch.testing.assert_close(classifier.net.trunk.state_dict()[name], value)
    assert "pretrained" not in classifier.hparams  # checkpoints load without the file


def test_a_trunk_of_another_shape_or_a_wrong_file_is_refused(tmp_path):
    module = PretrainingModule(tokenizer="char", **TINY)
    with pytest.raises(ValueError, match="does not fit this model: dim=16 there, 32 here"):
        ClassificationModule(n_classes=2, vocab_size=10, tokenizer="char", pretrained=module,
                             **{**TINY, "dim": 32})
    # Same weight shapes, other meaning: a stride the trunk was not trained with.
    with pytest.raises(ValueError, match="stem_stride=1 there, 2 here"):
        ClassificationModule(n_classes=2, vocab_size=10, tokenizer="char", pretrained=module,
                             stem_stride=2, **TINY)
    with pytest.raises(ValueError, match="is not a file"):
        ClassificationModule(n_classes=2, vocab_size=10, tokenizer="char",
                             pretrained=str(tmp_path / "missing.ckpt"), **TINY)
    other = tmp_path / "classifier.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"n_classes": 2}}, other)
    with pytest.raises(ValueError, match="not a PretrainingModule checkpoint"):
        ClassificationModule(n_classes=2, vocab_size=10, tokenizer="char",
                             pretrained=str(other), **TINY)
    with pytest.raises(ValueError, match="causal encoder"):
        PretrainingModule(tokenizer="char", **TINY).net.__class__(
            SequenceTrunk(vocab_size=10, bidirectional=True, **TINY))


def test_unlabelled_splits_hold_out_what_the_labelled_datamodule_holds_out():
    labelled = DNADataModule("nontata_promoters", test_fraction=0.2, val_fraction=0.1)
    unlabelled = DNADataModule("nontata_promoters", test_fraction=0.2, val_fraction=0.1,
                               labelled=False)
    labelled.setup("fit")
    unlabelled.setup("fit")
    for role in ("train", "val", "test"):
        assert unlabelled.datasets[role].sequences == labelled.datasets[role].sequences
    with pytest.raises(ValueError, match="unlabelled"):
        unlabelled.n_classes


def test_classifier_pretrains_in_one_call():
    X = periodic_dna(1, 60)
    y = np.arange(60) % 2
    extra = periodic_dna(2, 20)
    options = dict(dim=16, depth=1, heads=2, chunk_size=4, stem_kernel=4, max_epochs=1, pretrain=2, stem_stride=2, batch_size=16,
                   random_state=0, accelerator="cpu")
    first = TitansClassifier(**options).fit(X, y, pretrain_X=extra)
    again = TitansClassifier(**options).fit(X, y, pretrain_X=extra)
    np.testing.assert_allclose(first.predict_proba(X), again.predict_proba(X))
    without = TitansClassifier(**{**options, "pretrain": 0}).fit(X, y)
    assert not np.allclose(first.predict_proba(X), without.predict_proba(X))
    with pytest.raises(ValueError, match="pretrain=0"):
        TitansClassifier(**{**options, "pretrain": 0}).fit(X, y, pretrain_X=extra)
    with pytest.raises(TypeError, match="pretrain_X must be DNA"):
        TitansClassifier(**options).fit(X, y, pretrain_X=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="causal encoder"):
        TitansClassifier(**{**options, "bidirectional": True}).fit(X, y)
    with pytest.raises(ValueError, match="pretrained must be"):
        TitansClassifier(**{**options, "pretrained": 3}).fit(X, y)
    with pytest.raises(ValueError, match="pretrain applies to DNA"):
        TitansClassifier(**options).fit(np.zeros((8, 5)), np.arange(8) % 2)
