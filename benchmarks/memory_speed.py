"""Memory speed benchmark (``../shared/PROTOCOLS.md`` §1): our NeuralMemory vs titans-pytorch.

Every measurement runs in a fresh worker process (so peak RSS is per measurement), and the
implementations alternate inside each repetition (so machine noise hits both alike). The peer
runs in its own environment: pass ``--peer-python`` (or set ``BENCH_PYTHON``) to a Python that
has ``titans-pytorch`` installed; without it only our figures are printed.

    python benchmarks/memory_speed.py --peer-python /path/to/bench-venv/bin/python
    python benchmarks/memory_speed.py --sections speed --configs S    # a quicker subset

Ours runs as ``ours`` (the default: the native CPU kernel), ``ours-torch`` (its pure-PyTorch
fallback) and ``ours-compiled`` (the fallback with ``compiled=True``; ``--no-compiled`` skips
it).

Sections: ``speed`` (configs S and M, training and inference tokens/s, peak RSS, ratios),
``scaling`` (batch 1, 1 K … 64 K tokens, time per token), ``streaming`` (1,000,000 tokens in
pieces of 4,096), ``utilisation`` (achieved GFLOP/s over a measured fp32 matmul peak).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {
    # name: model dim, heads, head dim, chunk, batch, lengths
    "S": dict(dim=64, heads=4, head_dim=16, chunk=16, batch=8, lengths=[1024, 4096]),
    "M": dict(dim=256, heads=4, head_dim=64, chunk=64, batch=4, lengths=[4096]),
}
# ours: the default (the native CPU kernel); ours-torch: its pure-PyTorch fallback;
# ours-compiled: the fallback with its chunk step through torch.compile
IMPLEMENTATIONS = ["ours", "ours-torch", "ours-compiled", "peer-default", "peer-batch"]
OURS = [name for name in IMPLEMENTATIONS if name.startswith("ours")]
ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- worker side
def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _build(implementation: str, dim: int, heads: int, head_dim: int, chunk: int):
    import torch
    if implementation.startswith("ours"):
        sys.path.insert(0, str(ROOT))
        from titans_seq import NeuralMemory
        layer = NeuralMemory(dim, heads=heads, head_dim=head_dim, memory_depth=2,
                             memory_hidden=4 * head_dim, chunk_size=chunk,
                             compiled=implementation == "ours-compiled",
                             kernel="native" if implementation == "ours" else "torch")
        return layer, lambda x, state=None: layer(x, state)
    from titans_pytorch import NeuralMemory as PeerMemory
    batch_size = chunk if implementation == "peer-batch" else None
    layer = PeerMemory(dim, chunk_size=chunk, heads=heads, dim_head=head_dim,
                       batch_size=batch_size,
                       default_model_kwargs=dict(depth=2, expansion_factor=4.0))
    return layer, lambda x, state=None: layer(x, state=state)


def _time(step, repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def worker(task: dict) -> dict:
    import torch
    torch.set_num_threads(task["threads"])
    torch.manual_seed(0)
    kind = task["kind"]
    if kind == "peak":
        a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
        seconds = _time(lambda: a @ b, 20)
        return dict(gflops=2 * 1024 ** 3 / seconds / 1e9)
    layer, run = _build(task["implementation"], task["dim"], task["heads"], task["head_dim"],
                        task["chunk"])
    if kind in ("train", "infer"):
        batch, length = task["batch"], task["length"]
        x = torch.randn(batch, length, task["dim"])
    if kind == "train":
        x.requires_grad_()

        def step():
            y, _ = run(x)
            y.sum().backward()
        seconds = _time(step, task["repeats"])
    elif kind == "infer":
        def step():
            with torch.no_grad():
                run(x)
        seconds = _time(step, task["repeats"])
    elif kind == "stream":
        total, piece = task["tokens"], task["piece"]
        state, finite, rss_at_10k, processed = None, True, None, 0
        start = time.perf_counter()
        with torch.no_grad():
            while processed < total:
                y, state = run(torch.randn(1, piece, task["dim"]), state)
                finite &= bool(torch.isfinite(y).all())
                processed += piece
                if rss_at_10k is None and processed >= 10_000:
                    rss_at_10k = _peak_rss_mib()
        return dict(seconds=time.perf_counter() - start, tokens=processed, finite=finite,
                    rss_10k=rss_at_10k, rss_end=_peak_rss_mib())
    else:
        raise ValueError(f"unknown task kind {kind!r}")
    return dict(seconds=seconds, tokens_per_s=batch * length / seconds, rss=_peak_rss_mib())


# ----------------------------------------------------------------------------- driver side
def run_task(python: str, task: dict, timeout: float) -> dict:
    try:
        done = subprocess.run([python, __file__, "--worker", json.dumps(task)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(error=f"timed out after {timeout:.0f} s")
    if done.returncode != 0:
        return dict(error=(done.stderr.strip().splitlines() or ["failed"])[-1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_flops_per_token(heads: int, head_dim: int, hidden: int, chunk: int) -> float:
    """Forward FLOPs of our chunked op per token (all heads), counted from its matmuls."""
    widths = [head_dim, hidden, head_dim]
    per_head = 2 * (chunk + 1) ** 3 / chunk  # gate coefficients G = B·diag(m)·E per chunk
    for layer, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:])):
        per_head += 2 * d_in * d_out                      # key pass at the chunk-start weights
        per_head += 2 * d_in * d_out if layer > 0 else 0  # back-propagated δ
        per_head += 2 * d_in * 2 * d_out                 # [W; S] update, both weightings
        per_head += 2 * 2 * d_in * d_out                 # read of [W_0; S_0]
        per_head += 2 * chunk * d_in + 2 * chunk * d_out  # intra-chunk scores and their product
    return heads * per_head


def median_result(results: list[dict], key: str) -> float | None:
    values = [r[key] for r in results if key in r]
    return statistics.median(values) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--peer-python", default=os.environ.get("BENCH_PYTHON"),
                        help="a Python with titans-pytorch installed (env BENCH_PYTHON)")
    parser.add_argument("--sections", default="speed,scaling,streaming,utilisation")
    parser.add_argument("--configs", default="S,M")
    parser.add_argument("--runs", type=int, default=3, help="alternating repetitions")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per worker")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per worker")
    parser.add_argument("--scaling-lengths", default="1024,4096,16384,65536")
    parser.add_argument("--stream-tokens", type=int, default=1_000_000)
    parser.add_argument("--no-compiled", action="store_true",
                        help="skip the torch.compile variant of ours (saves compile time)")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    import torch
    sections = set(args.sections.split(","))
    ours_python = sys.executable
    implementations = IMPLEMENTATIONS if args.peer_python else OURS
    if args.no_compiled:
        implementations = [name for name in implementations if name != "ours-compiled"]
    peers = [name for name in implementations if name.startswith("peer")]
    pythons = {**{name: ours_python for name in OURS},
               "peer-default": args.peer_python, "peer-batch": args.peer_python}
    print(f"# memory_speed  torch {torch.__version__}  {platform.processor() or platform.machine()}"
          f"  threads {args.threads}  fp32 CPU  python {platform.python_version()}")
    if args.peer_python:
        version = subprocess.run([args.peer_python, "-c", "import importlib.metadata as m; "
                                  "print(m.version('titans-pytorch'), m.version('torch'))"],
                                 capture_output=True, text=True).stdout.strip()
        print(f"# peer: titans-pytorch, torch {version.replace(' ', ', torch ')}"
              if version else "# peer: titans-pytorch (version unknown)")

    peak = None
    if "utilisation" in sections or "speed" in sections:
        peak = median_result([run_task(ours_python, dict(kind="peak", threads=args.threads),
                                       args.timeout) for _ in range(args.runs)], "gflops")
        print(f"# measured fp32 matmul peak (1024^3 sgemm): {peak:.1f} GFLOP/s")

    speed_rows = []
    if "speed" in sections:
        print("\n## speed (tokens/s, median of runs; RSS = peak MiB of the worker)")
        print(f"{'config':>6} {'T':>6} {'mode':>6} " + " ".join(
            f"{name:>14} {'RSS':>6}" for name in implementations) + "  ratios")
        for config_name in args.configs.split(","):
            config = CONFIGS[config_name]
            for length in config["lengths"]:
                for mode in ("train", "infer"):
                    results: dict[str, list[dict]] = {name: [] for name in implementations}
                    for _ in range(args.runs):
                        for name in implementations:
                            task = dict(kind=mode, implementation=name, length=length,
                                        threads=args.threads, repeats=args.repeats,
                                        **{k: v for k, v in config.items() if k != "lengths"})
                            results[name].append(run_task(pythons[name], task, args.timeout))
                    speeds = {n: median_result(r, "tokens_per_s") for n, r in results.items()}
                    rss = {n: median_result(r, "rss") for n, r in results.items()}
                    cells = []
                    for name in implementations:
                        errors = [r["error"] for r in results[name] if "error" in r]
                        cells.append(f"{speeds[name]:>14.0f} {rss[name]:>6.0f}"
                                     if speeds[name] else f"{'error':>14} {'':>6}")
                        if errors:
                            print(f"   ({name}: {errors[0]})")
                    # the default against each peer and against its own fallback
                    ratios = "  ".join(
                        f"ours/{other} {speeds['ours'] / speeds[other]:.2f}x"
                        for other in [*peers, "ours-torch"]
                        if other in speeds and speeds[other] and speeds.get("ours"))
                    print(f"{config_name:>6} {length:>6} {mode:>6} " + " ".join(cells)
                          + f"  {ratios}")
                    speed_rows.append(dict(config=config_name, length=length, mode=mode,
                                           speeds=speeds))

    if "utilisation" in sections and peak:
        print("\n## utilisation of our op (model FLOPs: forward count, x3 for training)")
        for row in speed_rows:
            config = CONFIGS[row["config"]]
            flops = memory_flops_per_token(config["heads"], config["head_dim"],
                                           4 * config["head_dim"], config["chunk"])
            factor = 3 if row["mode"] == "train" else 1
            for name in OURS:
                if row["speeds"].get(name):
                    achieved = flops * factor * row["speeds"][name] / 1e9
                    print(f"{row['config']:>6} {row['length']:>6} {row['mode']:>6} {name:>14} "
                          f"{flops / 1e3:8.1f} kFLOP/token  {achieved:7.2f} GFLOP/s  "
                          f"{100 * achieved / peak:5.1f} % of peak")

    if "scaling" in sections:
        print("\n## scaling (ours, config S layer, batch 1; microseconds per token)")
        config = {k: v for k, v in CONFIGS["S"].items() if k not in ("lengths", "batch")}
        print(f"{'T':>7} {'train us/tok':>13} {'infer us/tok':>13}")
        for length in [int(n) for n in args.scaling_lengths.split(",")]:
            cells = []
            for mode in ("train", "infer"):
                runs = [run_task(ours_python, dict(kind=mode, implementation="ours", batch=1,
                                                   length=length, threads=args.threads,
                                                   repeats=args.repeats, **config),
                                 args.timeout) for _ in range(args.runs)]
                speed = median_result(runs, "tokens_per_s")
                cells.append(f"{1e6 / speed:>13.2f}" if speed else f"{'error':>13}")
            print(f"{length:>7} " + " ".join(cells))

    if "streaming" in sections:
        print(f"\n## streaming (ours, config S layer, batch 1, {args.stream_tokens:,} tokens "
              "in pieces of 4,096, inference)")
        config = {k: v for k, v in CONFIGS["S"].items() if k not in ("lengths", "batch")}
        result = run_task(ours_python, dict(kind="stream", implementation="ours",
                                            threads=args.threads, tokens=args.stream_tokens,
                                            piece=4096, **config), args.timeout)
        if "error" in result:
            print(f"   error: {result['error']}")
        else:
            print(f"tokens {result['tokens']:,}  seconds {result['seconds']:.1f}  "
                  f"tokens/s {result['tokens'] / result['seconds']:.0f}  peak RSS at 10 K "
                  f"{result['rss_10k']:.0f} MiB, at the end {result['rss_end']:.0f} MiB  "
                  f"all finite: {result['finite']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
