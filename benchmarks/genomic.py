"""DNA classification benchmark (shared/PROTOCOLS.md §3).

    python benchmarks/genomic.py --data PATH.csv[.gz] [--epochs 10] [--threads 2]

Any CSV (plain or gzipped) with ``sequence,label`` columns. Split: 20 % held out for the test
(stratified, seed 0), 10 % of the rest for validation / early stopping (stratified, seed 0).
A :class:`titans_seq.TitansClassifier` (it holds out the same validation rows itself) and,
side by side in the same run, the two peers of ``benchmarks/genomic_baselines.py`` (a small
CNN after the Genomic Benchmarks paper, and k-mer counts with logistic regression) and a
stronger reference beyond the protocol (k-mer counts with an MLP) report top-1 accuracy, MCC
and AUROC on the test part, with their training minutes.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, matthews_corrcoef, roc_auc_score
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from genomic_baselines import (kmer_logistic_regression, kmer_mlp, protocol_split,  # noqa: E402
                               small_cnn)
from datamodules.dna import stratified_split  # noqa: E402
from titans_seq import TitansClassifier  # noqa: E402

# Table 4 of the paper (accuracy %, trained on the official 27,097-sequence train split with
# pre-training): for reference only, not comparable with a sub-split of the test split.
PAPER_NONTATA = {"Neural Memory (paper, pre-trained)": 96.6, "CNN (paper)": 84.6}


def titans(train_part: tuple[list[str], np.ndarray], test_part: tuple[list[str], np.ndarray],
           args: argparse.Namespace) -> dict:
    """Fit on the protocol's training part (80 %, in its split order: the classifier then holds
    out exactly the protocol's validation rows, checked by :func:`check_split`) and score the
    test part."""
    classifier = make_classifier(args)
    start = time.perf_counter()
    classifier.fit(*train_part)
    seconds = time.perf_counter() - start
    sequences, labels = test_part
    probabilities = classifier.predict_proba(sequences)  # columns: class indices 0..K-1
    predicted = probabilities.argmax(1)
    auroc = (roc_auc_score(labels, probabilities[:, 1]) if probabilities.shape[1] == 2
             else roc_auc_score(labels, probabilities, multi_class="ovr"))
    return {"accuracy": accuracy_score(labels, predicted),
            "mcc": matthews_corrcoef(labels, predicted), "auroc": auroc,
            "train_seconds": seconds}


def make_classifier(args: argparse.Namespace) -> TitansClassifier:
    return TitansClassifier(
        variant=args.variant, dim=args.dim, depth=args.depth, memory_depth=args.memory_depth,
        chunk_size=args.chunk_size, dropout=args.dropout, bidirectional=args.bidirectional,
        readout=args.readout, stem_kernel=args.stem_kernel, tokenizer=args.tokenizer, k=args.k,
        rc_augment=args.rc_augment, rc_average=args.rc_average,
        max_surprise_norm=args.max_surprise_norm or None, max_epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, patience=args.patience, val_fraction=0.1,
        random_state=0, verbose=args.verbose)


def check_split(train_part: tuple[list[str], np.ndarray], split: dict,
                args: argparse.Namespace) -> None:
    """The classifier's own hold-out must be the protocol's validation part."""
    labels, classes = np.unique(train_part[1], return_inverse=True)
    rows = np.arange(len(classes))
    _, val_rows = stratified_split(rows, classes, make_classifier(args).val_fraction, 0, "val",
                                   labels.tolist())
    if sorted(train_part[0][i] for i in val_rows) != sorted(split["val"][0]):
        raise RuntimeError("the classifier's validation rows differ from the protocol's")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--variant", default="lmm")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--memory-depth", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--bidirectional", action="store_true")
    parser.add_argument("--readout", default="mean", choices=["mean", "last"])
    parser.add_argument("--stem-kernel", type=int, default=6)
    parser.add_argument("--max-surprise-norm", type=float, default=5.0,
                        help="clip each memory write's surprise (0: no clip, the paper's update)")
    parser.add_argument("--tokenizer", default="char", choices=["char", "onehot", "kmer"])
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--rc-augment", type=float, default=0.5)
    parser.add_argument("--rc-average", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--cnn-epochs", type=int, default=20)
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    frame = pd.read_csv(args.data)
    missing = {"sequence", "label"} - set(frame.columns)
    if missing:
        raise SystemExit(f"{args.data} lacks the column(s) {sorted(missing)}; it needs "
                         "sequence,label")
    # Class indices 0..K-1 (labels of any type), the same for every model.
    classes, labels = np.unique(frame["label"].to_numpy(), return_inverse=True)
    sequences = frame["sequence"].tolist()
    split = protocol_split(sequences, labels)
    train_sequences, test_sequences, train_labels, test_labels = train_test_split(
        sequences, labels, test_size=0.2, stratify=labels, random_state=0)
    check_split((train_sequences, train_labels), split, args)
    import lightning
    print(f"device cpu ({platform.processor() or platform.machine()}), fp32, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, lightning "
          f"{lightning.__version__}")
    print(f"data {args.data}: " + ", ".join(f"{k} {len(v[0])}" for k, v in split.items())
          + f"; classes {classes.tolist()}")
    print("titans " + ", ".join(f"{k}={getattr(args, k)}" for k in (
        "variant", "dim", "depth", "memory_depth", "chunk_size", "dropout", "bidirectional",
        "readout", "stem_kernel", "max_surprise_norm", "tokenizer", "k", "rc_augment",
        "rc_average", "epochs", "batch_size", "lr", "patience")), flush=True)
    results = {"titans": titans((train_sequences, train_labels),
                                (test_sequences, test_labels), args)}
    print(f"  titans done in {results['titans']['train_seconds'] / 60:.1f} min", flush=True)
    if not args.no_baselines:
        results["cnn"] = small_cnn(split, epochs=args.cnn_epochs, threads=args.threads)
        results["kmer-logreg"] = kmer_logistic_regression(split)
        # Not one of the protocol's peers: a stronger from-scratch reference (k-mer MLP).
        results["kmer-mlp"] = kmer_mlp(split, threads=args.threads)
    print(f"\n{'model':<14}{'accuracy %':>12}{'MCC':>8}{'AUROC':>8}{'train min':>11}")
    for name, row in results.items():
        print(f"{name:<14}{100 * row['accuracy']:>12.2f}{row['mcc']:>8.3f}{row['auroc']:>8.3f}"
              f"{row['train_seconds'] / 60:>11.1f}")
    for name, accuracy in PAPER_NONTATA.items():
        print(f"{name}: {accuracy} % (official train split; not comparable)")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "results": results},
                                             indent=1, default=float))


if __name__ == "__main__":
    main()
