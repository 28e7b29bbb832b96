"""Long-range recall: can a model return a value written thousands of tokens earlier?

Each sequence writes ``pairs`` key→value pairs, then ``gap`` distractor tokens, then asks for
every key once (in a random order); the model must output the value at each query. A token is
the sum of a key embedding, a value embedding and a kind embedding (pair, distractor, query);
distractors use their own keys, so they never contradict a pair. Models train on gaps drawn
from ``[0, train_gap]`` and are tested on longer ones, so an attention window shorter than the
gap leaves only the memory to carry the pairs.

Compared at equal width, depth and training budget: the four Titans variants and a
sliding-window-attention-only baseline whose feed-forward is widened to the same parameter
count (within a few per cent; printed).

    python benchmarks/long_recall.py                       # defaults, about 30 min on 2 cores
    python benchmarks/long_recall.py --steps 100 --test-gaps 64,512   # a quick look
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from titans_seq import TitansEncoder  # noqa: E402
from titans_seq.attention import SlidingWindowAttention  # noqa: E402
from titans_seq.blocks.parts import FeedForward, RMSNorm  # noqa: E402

PAIR, DISTRACTOR, QUERY = 0, 1, 2


def make_batch(batch: int, pairs: int, gap: int, keys: int, values: int,
               generator: torch.Generator):
    """Token ids (key, value, kind) of shape (B, T) each, and targets (B, pairs) at the end."""
    pair_keys = torch.argsort(torch.rand(batch, keys, generator=generator), dim=1)[:, :pairs]
    pair_values = torch.randint(values, (batch, pairs), generator=generator)
    distractor_keys = keys + torch.randint(keys, (batch, gap), generator=generator)
    distractor_values = torch.randint(values, (batch, gap), generator=generator)
    order = torch.argsort(torch.rand(batch, pairs, generator=generator), dim=1)
    query_keys = pair_keys.gather(1, order)
    targets = pair_values.gather(1, order)
    no_value = torch.full((batch, pairs), values)
    key_ids = torch.cat([pair_keys, distractor_keys, query_keys], dim=1)
    value_ids = torch.cat([pair_values, distractor_values, no_value], dim=1)
    kinds = torch.cat([torch.full((batch, pairs), PAIR), torch.full((batch, gap), DISTRACTOR),
                       torch.full((batch, pairs), QUERY)], dim=1)
    return key_ids, value_ids, kinds, targets


class SlidingWindowTransformer(nn.Module):
    """The attention-only baseline: pre-norm blocks of sliding-window attention and FFN."""

    def __init__(self, dim: int, depth: int, heads: int, window: int, ffn_mult: float):
        super().__init__()
        self.norms = nn.ModuleList(RMSNorm(dim) for _ in range(depth))
        self.attentions = nn.ModuleList(SlidingWindowAttention(dim, heads, window)
                                        for _ in range(depth))
        self.feed_forwards = nn.ModuleList(FeedForward(dim, ffn_mult, 0.0) for _ in range(depth))
        self.norm = RMSNorm(dim)

    def forward(self, x):
        for norm, attention, feed_forward in zip(self.norms, self.attentions, self.feed_forwards):
            cache = attention.initial_cache(x.shape[0], x)
            x = x + attention(norm(x), cache)[0]
            x = feed_forward(x)
        return self.norm(x), None


class RecallModel(nn.Module):
    def __init__(self, encoder: nn.Module, dim: int, keys: int, values: int):
        super().__init__()
        self.key_embedding = nn.Embedding(2 * keys, dim)
        self.value_embedding = nn.Embedding(values + 1, dim)
        self.kind_embedding = nn.Embedding(3, dim)
        self.encoder = encoder
        self.head = nn.Linear(dim, values)

    def forward(self, key_ids, value_ids, kinds, pairs: int):
        x = (self.key_embedding(key_ids) + self.value_embedding(value_ids)
             + self.kind_embedding(kinds))
        y, _ = self.encoder(x)
        return self.head(y[:, -pairs:])  # (B, pairs, values)


def build(name: str, args) -> RecallModel:
    common = dict(dim=args.dim, depth=args.depth, heads=args.heads, memory_heads=args.heads,
                  chunk_size=args.chunk_size, window=args.window, segment_len=args.window,
                  ffn_mult=2.0, max_lr=args.max_lr)
    if name == "swa":
        reference = sum(p.numel() for p in build("mag", args).parameters())
        ffn_mult = 2.0
        while True:  # widen the FFN until the baseline is as large as MAG
            model = RecallModel(SlidingWindowTransformer(args.dim, args.depth, args.heads,
                                                         args.window, ffn_mult),
                                args.dim, args.keys, args.values)
            if sum(p.numel() for p in model.parameters()) >= reference:
                return model
            ffn_mult += 0.25
    return RecallModel(TitansEncoder(name, **common), args.dim, args.keys, args.values)


def train(model: RecallModel, args, seed: int) -> float:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=args.steps,
                                                   pct_start=0.1)
    start = time.perf_counter()
    for step in range(args.steps):
        gap = int(torch.randint(args.train_gap + 1, (1,), generator=generator))
        key_ids, value_ids, kinds, targets = make_batch(args.batch, args.pairs, gap, args.keys,
                                                        args.values, generator)
        logits = model(key_ids, value_ids, kinds, args.pairs)
        loss = F.cross_entropy(logits.reshape(-1, args.values), targets.reshape(-1))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"diverged at step {step}")
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if args.verbose and step % 50 == 0:
            print(f"    step {step:4d} gap {gap:4d} loss {loss.item():.3f}", flush=True)
    return time.perf_counter() - start


@torch.no_grad()
def accuracy(model: RecallModel, args, gap: int, seed: int) -> float:
    generator = torch.Generator().manual_seed(seed)
    correct = total = 0
    for _ in range(args.test_batches):
        key_ids, value_ids, kinds, targets = make_batch(args.batch, args.pairs, gap, args.keys,
                                                        args.values, generator)
        predicted = model(key_ids, value_ids, kinds, args.pairs).argmax(-1)
        correct += int((predicted == targets).sum())
        total += targets.numel()
    return correct / total


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lmm,mac,mag,mal,swa")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--window", type=int, default=32,
                        help="attention window (MAG, MAL, baseline) and MAC segment length")
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--keys", type=int, default=16)
    parser.add_argument("--values", type=int, default=16)
    parser.add_argument("--train-gap", type=int, default=96)
    parser.add_argument("--test-gaps", default="0,16,64,256,1024,4096")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--test-batches", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--max-lr", type=float, default=None,
                        help="the memories' max_lr (default 1 / chunk size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    gaps = [int(g) for g in args.test_gaps.split(",")]

    print(f"# long-range recall  torch {torch.__version__}  {platform.processor() or 'cpu'}  "
          f"threads {torch.get_num_threads()}  fp32")
    print(f"# {args.pairs} pairs, {args.keys} keys, {args.values} values (chance "
          f"{1 / args.values:.3f}); train gaps 0..{args.train_gap}, {args.steps} steps of "
          f"{args.batch}; window/segment {args.window}; dim {args.dim}, depth {args.depth}")
    header = f"| model | params | train s | " + " | ".join(f"gap {g}" for g in gaps) + " |"
    print(header)
    print("|" + "---|" * (3 + len(gaps)))
    for name in args.models.split(","):
        torch.manual_seed(args.seed)
        model = build(name, args)
        try:
            seconds = train(model, args, args.seed)
        except (FloatingPointError, ValueError) as error:  # NaN loss, or NaN reaching the input
            print(f"| {name} | training failed: {error} |", flush=True)
            continue
        model.eval()
        scores = [accuracy(model, args, gap, args.seed + 1) for gap in gaps]
        params = sum(p.numel() for p in model.parameters())
        print(f"| {name} | {params:,} | {seconds:.0f} | "
              + " | ".join(f"{s:.3f}" for s in scores) + " |", flush=True)


if __name__ == "__main__":
    main()
