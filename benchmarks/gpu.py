"""One GPU benchmark, one results file: the memory layer, the estimators, the GPU configs.

    python benchmarks/gpu.py                          # on a machine with one CUDA GPU
    python benchmarks/gpu.py --smoke --device cpu     # the same code path, tiny, on the CPU

Sections (each measurement is guarded: an out-of-memory or a missing peer is recorded, and the
run goes on):

- ``memory``: ``NeuralMemory`` at configs S and M of ``shared/PROTOCOLS.md`` §1 and a large
  one (dim 1024, 16 heads of 64, chunk 64, batch 1, T = 8 K and 64 K): tokens/s forward
  (inference mode) and training (forward and backward), peak GPU memory, for the Triton
  kernel, the pure-PyTorch path and titans-pytorch's default mode when it is importable (its
  wheels may travel with the run: ``--peer-path``).
- ``estimators``: the default ``TitansForecaster`` fitted on ETTm1's training rows and the
  default ``TitansClassifier`` on the promoter set, on the device, next to their 2-core CPU
  figures (``benchmarks/results/fit_time_2026-12-01.txt``); then, on the device, the
  forecaster's 5-window backtest and the classifier's ``predict_proba`` of every sequence.
- ``configs``: ``configs/dna_promoters_gpu.yaml`` and ``configs/dna_pretrain_gpu.yaml`` for a
  few hundred steps each (steps/s).

It writes ``--out`` (JSON: the device, the versions, one record per measurement) and prints a
table. The whole run is sized to finish within 8 minutes on one GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LAYERS = {
    # name: model dim, heads, head dim, chunk, batch, lengths (PROTOCOLS §1, and a large one)
    "S": dict(dim=64, heads=4, head_dim=16, chunk=16, batch=8, lengths=[1024, 4096]),
    "M": dict(dim=256, heads=4, head_dim=64, chunk=64, batch=4, lengths=[4096]),
    "L": dict(dim=1024, heads=16, head_dim=64, chunk=64, batch=1, lengths=[8192, 65536]),
}
SMOKE_LAYERS = {"S": dict(dim=16, heads=2, head_dim=8, chunk=4, batch=2, lengths=[32])}
# the 2-core CPU figures the estimators are compared with (fit_time_2026-12-01.txt)
CPU_FIT_SECONDS = {"forecaster_etth1": 31.8, "classifier_promoters": 329.6}
GPU_CONFIGS = ("dna_promoters_gpu.yaml", "dna_pretrain_gpu.yaml")


def _timed(step: Callable[[], Any], repeats: int, synchronise: Callable[[], None]) -> float:
    step()  # warm-up (and compilation)
    synchronise()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronise()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _layer(implementation: str, config: dict, device: str):
    if implementation == "peer":
        from titans_pytorch import NeuralMemory as PeerMemory
        layer = PeerMemory(config["dim"], chunk_size=config["chunk"], heads=config["heads"],
                           dim_head=config["head_dim"],
                           default_model_kwargs=dict(depth=2, expansion_factor=4.0))
        return layer.to(device), lambda x: layer(x)[0]
    from titans_seq import NeuralMemory
    kernel = {"triton": "triton", "torch": "torch", "native": "native"}[implementation]
    layer = NeuralMemory(config["dim"], heads=config["heads"], head_dim=config["head_dim"],
                         memory_depth=2, memory_hidden=4 * config["head_dim"],
                         chunk_size=config["chunk"], kernel=kernel).to(device)
    return layer, lambda x: layer(x)[0]


def memory_record(implementation: str, name: str, config: dict, length: int, device: str,
                  repeats: int) -> dict:
    """Forward and training tokens/s and peak memory of one layer at one length."""
    import torch
    record = dict(section="memory", config=name, implementation=implementation, length=length,
                  batch=config["batch"])
    cuda = device.startswith("cuda")
    synchronise = torch.cuda.synchronize if cuda else (lambda: None)
    try:
        layer, run = _layer(implementation, config, device)
        x = torch.randn(config["batch"], length, config["dim"], device=device)
        tokens = config["batch"] * length
        if cuda:
            torch.cuda.reset_peak_memory_stats()

        def forward():
            with torch.inference_mode():
                run(x)
        record["forward_tokens_per_s"] = tokens / _timed(forward, repeats, synchronise)
        x.requires_grad_()

        def train():
            run(x).sum().backward()
        record["train_tokens_per_s"] = tokens / _timed(train, repeats, synchronise)
        if cuda:
            record["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    except Exception as error:  # an OOM, a missing peer, a kernel that cannot run here
        record["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    finally:
        if cuda:
            torch.cuda.empty_cache()
    return record


def memory_section(layers: dict, implementations: list[str], device: str,
                   repeats: int) -> list[dict]:
    records = []
    for name, config in layers.items():
        for length in config["lengths"]:
            for implementation in implementations:
                records.append(memory_record(implementation, name, config, length, device,
                                             repeats))
                print(_row(records[-1]), flush=True)
    return records


def estimator_section(device: str, smoke: bool, ettm1: Path | None) -> list[dict]:
    """The default forecaster and classifier fitted on the device (tiny with ``smoke``)."""
    import numpy as np
    from datamodules.datasets import load_etth1, load_nontata_promoters
    from datamodules.timeseries import read_table
    from titans_seq import TitansClassifier, TitansForecaster

    frame = read_table(ettm1) if ettm1 is not None and ettm1.is_file() else load_etth1()
    data = "ETTm1" if ettm1 is not None and ettm1.is_file() else "ETTh1"
    rows = 300 if smoke else (34560 if data == "ETTm1" else 8640)  # the training rows
    small = dict(max_epochs=1, dim=8, lookback=24, linear_lookback=48, patch_len=4,
                 horizon=6, head_hidden=8) if smoke else {}
    sequences, labels = load_nontata_promoters(as_frame="lists")
    if smoke:  # both classes (the file is sorted by label)
        sequences, labels = sequences[:32] + sequences[-32:], [*labels[:32], *labels[-32:]]
    classifier_small = dict(max_epochs=1, dim=8, kmer_epochs=1, kmer_hidden=8) if smoke else {}
    records = []
    for name, build, fit, use in (
            ("forecaster", lambda: TitansForecaster(random_state=0, device=device, **small),
             lambda model: model.fit(frame.iloc[:rows]),
             lambda model: model.backtest(n_windows=5)),
            ("classifier", lambda: TitansClassifier(random_state=0, device=device,
                                                    **classifier_small),
             lambda model: model.fit(sequences, np.asarray(labels)),
             lambda model: model.predict_proba(sequences))):
        record = dict(section="estimators", estimator=name,
                      data=data if name == "forecaster" else "nontata_promoters")
        try:
            model = build()
            start = time.perf_counter()
            fit(model)
            record["fit_seconds"] = time.perf_counter() - start
            start = time.perf_counter()  # a backtest of 5 windows, or every sequence's classes
            use(model)
            record["use_seconds"] = time.perf_counter() - start
            record["runs_on"] = str(model._placed())
        except Exception as error:
            record["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        key = "forecaster_etth1" if name == "forecaster" else "classifier_promoters"
        record["cpu_2_cores_fit_seconds"] = CPU_FIT_SECONDS[key]
        records.append(record)
        print(_row(record), flush=True)
    return records


def config_section(steps: int, device: str) -> list[dict]:
    """The GPU configs for ``steps`` training steps each (steps/s)."""
    from titans_seq.cli import build_cli
    records = []
    for config in GPU_CONFIGS:
        record = dict(section="configs", config=config, steps=steps)
        overrides = [f"--trainer.max_steps={steps}", "--trainer.limit_val_batches=0",
                     "--trainer.enable_progress_bar=false"]
        if not device.startswith("cuda"):
            overrides += ["--trainer.accelerator=cpu", "--trainer.precision=32-true",
                          "--model.init_args.encoder.dim=16", "--model.init_args.encoder.heads=2",
                          "--model.init_args.encoder.memory_heads=2",
                          "--data.init_args.batch_size=4", "--data.init_args.num_workers=0"]
        argv, sys.argv = sys.argv, ["titans-seq"]  # the CLI reads args=, not this argv
        folder, here = tempfile.mkdtemp(prefix="titans_gpu_"), os.getcwd()
        os.chdir(folder)  # what a config writes (checkpoints) goes to a scratch folder
        try:
            start = time.perf_counter()
            cli = build_cli(["fit", "--config", str(ROOT / "configs" / config), *overrides])
            record["seconds"] = time.perf_counter() - start
            record["steps_done"] = int(cli.trainer.global_step)
            record["steps_per_s"] = record["steps_done"] / record["seconds"]
        except BaseException as error:  # the CLI exits on a bad config
            record["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        finally:
            sys.argv = argv
            os.chdir(here)
            shutil.rmtree(folder, ignore_errors=True)
        records.append(record)
        print(_row(record), flush=True)
    return records


def _row(record: dict) -> str:
    shown = {k: (f"{v:,.1f}" if isinstance(v, float) else v) for k, v in record.items()}
    return "  ".join(f"{k}={v}" for k, v in shown.items())


def environment(device: str) -> dict:
    import torch
    info = dict(torch=torch.__version__, python=platform.python_version(), device=device,
                machine=platform.machine())
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        import triton
        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=Path("gpu_results.json"))
    parser.add_argument("--sections", default="memory,estimators,configs")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (a test of the script)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--config-steps", type=int, default=300)
    parser.add_argument("--ettm1", type=Path,
                        default=ROOT.parent / "shared" / "data" / "timeseries" / "ETTm1.csv.gz")
    parser.add_argument("--peer-path", type=Path, default=None,
                        help="a folder holding titans-pytorch and its dependencies")
    args = parser.parse_args(argv)
    if args.peer_path is not None:
        sys.path.append(str(args.peer_path))
    sections = set(args.sections.split(","))
    unknown = sections - {"memory", "estimators", "configs"}
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")
    implementations = ["triton", "torch", "peer"]
    if not args.device.startswith("cuda"):
        implementations = ["native", "torch", "triton"]  # triton: its interpreter, if set
    results = dict(environment=environment(args.device), records=[])
    start = time.perf_counter()
    if "memory" in sections:
        layers = SMOKE_LAYERS if args.smoke else LAYERS
        results["records"] += memory_section(layers, implementations, args.device,
                                             1 if args.smoke else args.repeats)
    if "estimators" in sections:
        results["records"] += estimator_section(args.device, args.smoke, args.ettm1)
    if "configs" in sections:
        results["records"] += config_section(2 if args.smoke else args.config_steps,
                                             args.device)
    results["seconds"] = time.perf_counter() - start
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out} ({results['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
