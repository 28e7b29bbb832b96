"""DNA classification benchmark (shared/PROTOCOLS.md §3 and §3b).

    python benchmarks/genomic.py --data PATH.csv[.gz] [--seeds 0 1 2] [--threads 2]

Any CSV (plain or gzipped) with ``sequence,label`` columns. Split: 20 % held out for the test
(stratified, seed 0), 10 % of the rest for validation / early stopping (stratified, seed 0);
the split stays fixed, neural rows are trained with seeds 0, 1, 2 and reported as mean ± std.

Rows, side by side in one run:

- ``titans``: ``TitansClassifier(random_state=seed).fit(X, y)``, the default as a user gets it
  (a k-mer branch trained first, then the Titans encoder beside it, from scratch). It holds
  out the protocol's validation rows itself (checked by :func:`check_split`).
- ``titans: k-mer stage``: the default's first stage (its k-mer branch alone), read from the
  same fits: what the encoder adds;
- variants of the default (:data:`ABLATIONS`): next-base pre-training of the encoder first
  (on the training part only, the 80 %, never the test sequences), and the encoder without
  the k-mer branch;
- the peers of ``benchmarks/genomic_baselines.py``: the Genomic Benchmarks CNN, k-mer (4–6)
  counts with logistic regression (the protocol's two), k-mer (1–6) counts with an MLP and
  k-mer (6) counts with a random forest (stronger references). The MLP has the architecture of
  the classifier's k-mer branch, so it is also the "branch alone" ablation.

Top-1 accuracy, MCC and AUROC on the test part, and the training minutes (on this machine's
threads; with ``--jobs 2`` two Titans fits share them).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, matthews_corrcoef, roc_auc_score
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from genomic_baselines import (kmer_logistic_regression, kmer_mlp,  # noqa: E402
                               kmer_random_forest, protocol_split, small_cnn)
from datamodules.dna import stratified_split  # noqa: E402
from titans_seq import TitansClassifier  # noqa: E402

# What each ablation changes in the default classifier.
ABLATIONS: dict[str, dict] = {
    "titans-pretrained": {"pretrain": 2},  # next-base pre-training on the training part first
    "titans-no-kmers": {"kmer_sizes": None},  # the encoder alone
}
KMER_ROWS = ("kmer-logreg", "kmer-mlp", "kmer-forest")
# Table 4 of the paper (accuracy %, trained on the official 27,097-sequence train split with
# pre-training): for reference only, not comparable with a sub-split of the test split.
PAPER_NONTATA = {"Neural Memory (paper, pre-trained)": 96.6, "CNN (paper)": 84.6}


def titans(options: dict, seed: int, train_part: tuple[list[str], np.ndarray],
           test_part: tuple[list[str], np.ndarray], verbose: bool, threads: int) -> dict:
    """Fit on the protocol's training part (in its split order: the classifier then holds out
    exactly the protocol's validation rows) and score the test part."""
    torch.set_num_threads(threads)
    classifier = TitansClassifier(random_state=seed, verbose=verbose, **options)
    start = time.perf_counter()
    classifier.fit(*train_part)
    seconds = time.perf_counter() - start
    sequences, labels = test_part
    result = {**scores(labels, classifier.predict_proba(sequences)), "train_seconds": seconds}
    net = classifier.module_.net
    if net.parts == "encoder":
        # Trained in two stages: the first stage's model (the k-mer branch alone) is the
        # network without the encoder's share of the logits.
        net.train_only("kmers")
        result["branch"] = scores(labels, classifier.predict_proba(sequences))
    return result


def scores(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """Accuracy, MCC and AUROC (one-vs-rest for several classes); columns are class indices."""
    predicted = probabilities.argmax(1)
    auroc = (roc_auc_score(labels, probabilities[:, 1]) if probabilities.shape[1] == 2
             else roc_auc_score(labels, probabilities, multi_class="ovr"))
    return {"accuracy": accuracy_score(labels, predicted),
            "mcc": matthews_corrcoef(labels, predicted), "auroc": auroc}


def check_split(train_part: tuple[list[str], np.ndarray], split: dict) -> None:
    """The classifier's own hold-out must be the protocol's validation part."""
    labels, classes = np.unique(train_part[1], return_inverse=True)
    rows = np.arange(len(classes))
    _, val_rows = stratified_split(rows, classes, TitansClassifier().val_fraction, 0, "val",
                                   labels.tolist())
    if sorted(train_part[0][i] for i in val_rows) != sorted(split["val"][0]):
        raise RuntimeError("the classifier's validation rows differ from the protocol's")


def summary(runs: list[dict]) -> dict:
    """Mean and spread (sample std; 0 for one run) of each figure over seeds."""
    out = {"runs": runs}
    for key in ("accuracy", "mcc", "auroc", "train_seconds"):
        values = np.array([run.get(key, np.nan) for run in runs], dtype=float)
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def format_row(name: str, row: dict) -> str:
    def cell(key: str, scale: float, digits: int) -> str:
        spread = f" ± {scale * row[key + '_std']:.{digits}f}" if len(row["runs"]) > 1 else ""
        return f"{scale * row[key]:.{digits}f}{spread}"
    return (f"{name:<32}{cell('accuracy', 100, 2):>16}{cell('mcc', 1, 3):>16}"
            f"{cell('auroc', 1, 3):>16}{row['train_seconds'] / 60:>10.1f}{len(row['runs']):>6}"
            ).replace("nan", "  -")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="training seeds of the neural rows (the split is always seed 0)")
    parser.add_argument("--rows", nargs="+", default=None,
                        help=f"Titans rows to run: titans {' '.join(ABLATIONS)} (default all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=1,
                        help="Titans fits run at once, each on threads / jobs threads (their "
                             "minutes are then those of a shared machine)")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="change a TitansClassifier parameter in every Titans row (e.g. "
                             "max_epochs=1 dim=16 for a smoke run; values are JSON)")
    parser.add_argument("--cnn-epochs", type=int, default=20)
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {}
    for item in args.set:
        name, _, value = item.partition("=")
        overrides[name] = json.loads(value)
    rows = {"titans": {}, **ABLATIONS}
    chosen = args.rows or list(rows)
    unknown = sorted(set(chosen) - set(rows))
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; choose from {list(rows)}")
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
    check_split((train_sequences, train_labels), split)
    import lightning
    print(f"device cpu ({platform.processor() or platform.machine()}), fp32, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, lightning "
          f"{lightning.__version__}")
    print(f"data {args.data}: " + ", ".join(f"{k} {len(v[0])}" for k, v in split.items())
          + f"; classes {classes.tolist()}; seeds {args.seeds}")
    defaults = TitansClassifier().get_params()
    print("titans default: " + ", ".join(f"{k}={v}" for k, v in defaults.items()
                                         if k not in ("verbose", "trainer_kwargs")))
    if overrides:
        print(f"every Titans row with {overrides}")
    results: dict[str, dict] = {}
    fits = [(name, seed) for name in chosen for seed in args.seeds]
    threads = max(1, args.threads // args.jobs)
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(titans, {**rows[name], **overrides}, seed,
                               (train_sequences, train_labels), (test_sequences, test_labels),
                               args.verbose, threads) for name, seed in fits]
        runs: dict[str, list] = {name: [] for name in chosen}
        for (name, seed), future in zip(fits, futures):
            run = future.result()
            runs[name].append(run)
            print(f"  {name} seed {seed}: accuracy {100 * run['accuracy']:.2f} %, MCC "
                  f"{run['mcc']:.3f}, {run['train_seconds'] / 60:.1f} min", flush=True)
    for name, row in runs.items():
        results[name] = summary(row)
        if all("branch" in run for run in row):  # its first stage, reported beside it
            results[f"{name}: k-mer stage"] = summary([run["branch"] for run in row])
    if not args.no_baselines:
        results["cnn"] = summary([small_cnn(split, epochs=args.cnn_epochs, seed=seed,
                                            threads=args.threads) for seed in args.seeds])
        results["kmer-logreg"] = summary([kmer_logistic_regression(split)])  # deterministic
        results["kmer-mlp"] = summary([kmer_mlp(split, seed=seed, threads=args.threads)
                                       for seed in args.seeds])
        results["kmer-forest"] = summary([kmer_random_forest(split, n_jobs=args.threads)])
    print(f"\n{'model':<32}{'accuracy %':>16}{'MCC':>16}{'AUROC':>16}{'train min':>10}"
          f"{'runs':>6}")
    for name, row in results.items():
        print(format_row(name, row))
    for name, accuracy in PAPER_NONTATA.items():
        print(f"{name}: {accuracy} % (official train split; not comparable)")
    if "titans" in results and all(name in results for name in KMER_ROWS):
        best = {key: max(results[name][key] for name in KMER_ROWS) for key in ("accuracy",
                                                                               "mcc")}
        above = all(results["titans"][key] > best[key] for key in best)
        print(f"default Titans above every k-mer model on mean accuracy and MCC: "
              f"{'yes' if above else 'no'} (best k-mer: {100 * best['accuracy']:.2f} %, MCC "
              f"{best['mcc']:.3f})")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "results": results},
                                             indent=1, default=float))


if __name__ == "__main__":
    main()
