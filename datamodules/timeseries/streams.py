"""Long series as lanes read in segments, for models whose memory reads the whole history.

A *lane* is one channel of one series, read from its first row. Lanes are grouped ``lanes``
at a time and each group is cut into segments of ``tokens`` patches of ``patch_len`` rows; the
items come group by group and, within a group, segment by segment in time order, so a model
carries its memory state from one segment to the next (truncated back-propagation through
time: the state is detached between them). Every origin of a segment is a forecast; those in
the allowed range (and with observed targets) are scored.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from .windows import PreparedSeries


class LaneSegments(IterableDataset):
    """Segments of every lane, in the order a recurrent model must read them.

    Parameters
    ----------
    series : list of PreparedSeries
        The scaled series.
    origins : list of (int, int)
        First and last scored origin of each series (inclusive; an empty range scores none).
    stops : list of int
        Rows of each series the lanes hold (targets past it are not scored).
    context, horizon, patch_len, tokens : int
        Rows a forecast reads, rows it predicts, rows per token, tokens per segment.
    lanes : int
        Lanes per item (the batch size).
    shuffle, seed
        Group the lanes in an order that depends only on ``seed`` and :attr:`epoch`.
    rank, world_size
        Distributed training: each rank reads its share of the lanes, and every rank yields
        the same number of items (padded with empty lanes), as DDP needs.
    merge_unscored : bool
        Read everything before the first scored origin as one segment (evaluation: the memory
        reads the training rows in one call, and every item after it scores something).

    Items are dicts: ``values, observed (B, context + (tokens + 1)·patch_len + horizon − 1)``,
    ``covariates (…, F)``, ``static (B, S)``, ``scored (B, tokens·patch_len)`` bool,
    ``lane (B, 2)`` (series, channel; −1 for padding), ``origin (tokens·patch_len,)``,
    ``group`` and ``segment`` (ints as 0-d tensors).
    """

    items_are_batches = True  # a loader passes items through as they are

    def __init__(self, series: list[PreparedSeries], origins: list[tuple[int, int]],
                 stops: list[int], context: int, horizon: int, patch_len: int, tokens: int,
                 lanes: int, shuffle: bool = False, seed: int = 0, rank: int = 0,
                 world_size: int = 1, merge_unscored: bool = False) -> None:
        self.series, self.origins, self.stops = series, origins, stops
        self.context, self.horizon, self.patch_len, self.tokens = (context, horizon, patch_len,
                                                                   tokens)
        self.lanes, self.shuffle, self.seed = lanes, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.all_lanes = [(i, c) for i, (first, last) in enumerate(origins) if first <= last
                          for c in range(series[i].values.shape[1])]
        self.plan = self._plan(merge_unscored)  # (first token, tokens) of every segment
        self.segments = len(self.plan)
        share = math.ceil(len(self.all_lanes) / world_size)
        self.groups = math.ceil(share / lanes) if share else 0
        # as few lanes per item as the groups need (no padding lanes on small data)
        self.group_size = math.ceil(share / self.groups) if share else 0

    def _plan(self, merge_unscored: bool) -> list[tuple[int, int]]:
        scored = [(first, last) for first, last in self.origins if first <= last]
        if not scored:
            return []
        patch, tokens = self.patch_len, self.tokens
        first = min(first for first, _ in scored)
        last = max(last for _, last in scored)
        plan, start = [], 0
        # a segment of n tokens from token s forecasts at origins [(s + 1)·P, (s + n + 1)·P)
        warm = (first - patch) // patch if merge_unscored else 0
        if warm >= 1:
            plan.append((0, warm))
            start = warm
        while (start + 1) * patch <= last:
            plan.append((start, tokens))
            start += tokens
        return plan

    def __len__(self) -> int:
        return self.groups * self.segments

    @property
    def scored(self) -> int:
        """Origins scored per lane channel, summed (windows × channels)."""
        return sum((last - first + 1) * self.series[i].values.shape[1]
                   for i, (first, last) in enumerate(self.origins) if first <= last)

    def examples(self, lookback: int, limit: int = 200_000) -> tuple[Tensor, Tensor]:
        """Complete ``(window (N, lookback), target (N, H))`` pairs at every scored origin of
        every lane (all ranks see the same), in time order within each lane; evenly thinned to
        at most ``limit`` pairs. For closed-form fits such as the linear path's ridge."""
        windows, targets = [], []
        total = max(1, self.scored)
        step = max(1, math.ceil(total / limit))
        for index, channel in self.all_lanes:
            series, (first, last) = self.series[index], self.origins[index]
            first = max(first, lookback)
            last = min(last, self.stops[index] - self.horizon)
            if last < first:
                continue
            values = series.values[:self.stops[index], channel]
            observed = series.observed[:self.stops[index], channel]
            origins = torch.arange(first, last + 1, step)
            window = values.unfold(0, lookback, 1)[origins - lookback]
            target = values.unfold(0, self.horizon, 1)[origins]
            complete = observed.unfold(0, lookback, 1)[origins - lookback].all(1) & \
                observed.unfold(0, self.horizon, 1)[origins].all(1)
            windows.append(window[complete])
            targets.append(target[complete])
        if not windows:
            return torch.zeros(0, lookback), torch.zeros(0, self.horizon)
        return torch.cat(windows), torch.cat(targets)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _lane_order(self) -> list[tuple[int, int]]:
        order = list(self.all_lanes)
        if self.shuffle:
            generator = np.random.default_rng([self.seed, self.epoch])
            order = [order[i] for i in generator.permutation(len(order))]
        mine = order[self.rank::self.world_size]
        share = self.groups * self.group_size
        return mine + [(-1, -1)] * (share - len(mine))

    def __iter__(self):
        if get_worker_info() is not None and get_worker_info().num_workers > 1:
            raise ValueError("lane segments are read in order by one process; use "
                             "num_workers <= 1")
        order = self._lane_order()
        for group in range(self.groups):
            lanes = order[group * self.group_size:(group + 1) * self.group_size]
            for segment in range(self.segments):
                yield self.item(lanes, group, segment)

    def item(self, lanes: list[tuple[int, int]], group: int, segment: int) -> dict[str, Tensor]:
        first_token, tokens = self.plan[segment]
        patch, context, rows = self.patch_len, self.context, tokens * self.patch_len
        start = first_token * patch  # first row of the segment's patches
        first_row = start - context
        length = context + rows + patch + self.horizon - 1
        features = self.series[0].covariates.shape[1]
        statics = self.series[0].static.shape[0]
        values = torch.zeros(len(lanes), length)
        observed = torch.zeros(len(lanes), length, dtype=torch.bool)
        covariates = torch.zeros(len(lanes), length, features)
        static = torch.zeros(len(lanes), statics)
        origin = torch.arange(start + patch, start + patch + rows)
        scored = torch.zeros(len(lanes), rows, dtype=torch.bool)
        for row, (index, channel) in enumerate(lanes):
            if index < 0:
                continue
            series, stop = self.series[index], self.stops[index]
            low, high = max(first_row, 0), min(first_row + length, stop)
            if high > low:
                values[row, low - first_row:high - first_row] = series.values[low:high, channel]
                observed[row, low - first_row:high - first_row] = \
                    series.observed[low:high, channel]
            cov_high = min(first_row + length, series.covariates.shape[0])
            if cov_high > low:
                covariates[row, low - first_row:cov_high - first_row] = \
                    series.covariates[low:cov_high]
            static[row] = series.static
            first, last = self.origins[index]
            scored[row] = (origin >= first) & (origin <= last)
        return {"values": values, "observed": observed, "covariates": covariates,
                "static": static, "scored": scored, "lane": torch.tensor(lanes).view(-1, 2),
                "origin": origin, "group": torch.tensor(group),
                "segment": torch.tensor(segment)}


def segment_targets(values: Tensor, observed: Tensor, scored: Tensor, context: int,
                    patch_len: int, horizon: int) -> tuple[Tensor, Tensor]:
    """The targets of every origin of a segment item: ``(B, O, H)`` values and the mask of
    what is scored (a scored origin, an observed row)."""
    rows = scored.shape[1]
    start = patch_len + context
    target = values[:, start:start + rows + horizon - 1].unfold(1, horizon, 1)
    mask = observed[:, start:start + rows + horizon - 1].unfold(1, horizon, 1)
    return target, mask & scored[..., None]
