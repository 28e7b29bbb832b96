"""Train / validation / test datasets of prepared series: the one place where forecast origins
are laid out, used by :class:`TimeSeriesDataModule` and by ``TitansForecaster.fit``."""

from __future__ import annotations

from typing import Literal, Sequence

from .streams import LaneSegments
from .windows import PreparedSeries, WindowDataset

PARTS = ("train", "val", "test")


def part_origins(borders: Sequence[tuple[int, int, int]], context: int, horizon: int
                 ) -> dict[str, tuple[list[tuple[int, int]], list[int]]]:
    """Per part, each series' ``(first, last)`` forecast origin and the row its data stop at.

    An origin needs ``context`` rows before it (from any earlier part: validation and test
    read their input from training rows) and ``horizon`` rows after it inside its part.
    """
    starts = {"train": [context] * len(borders),
              "val": [max(b[0], context) for b in borders],
              "test": [max(b[1], context) for b in borders]}
    stops = {name: [b[index] for b in borders] for index, name in enumerate(PARTS)}
    return {name: ([(start, stop - horizon) for start, stop in zip(starts[name], stops[name])],
                   stops[name]) for name in PARTS}


def forecast_datasets(prepared: list[PreparedSeries], borders: Sequence[tuple[int, int, int]],
                      *, mode: Literal["stream", "window"], context: int, horizon: int,
                      patch_len: int, segment_tokens: int, batch_size: int,
                      eval_batch_size: int, stride: int = 1, shuffle: bool = True,
                      seed: int = 0, rank: int = 0, world_size: int = 1,
                      needs: str = "lookback + warmup") -> dict[str, LaneSegments | WindowDataset]:
    """The datasets of the three parts (a part without origins is empty).

    ``mode="stream"``: :class:`LaneSegments` of ``batch_size`` lanes (``eval_batch_size`` for
    validation and test, whose unscored segments are merged); ``mode="window"``:
    :class:`WindowDataset` of ``context`` rows, training origins every ``stride`` rows.
    Raises ``ValueError`` when no training origin exists, naming ``needs`` (the parameters
    whose sum is ``context``).
    """
    datasets = {}
    for name, (origins, stops) in part_origins(borders, context, horizon).items():
        training = name == "train"
        if mode == "stream":
            datasets[name] = LaneSegments(
                prepared, origins, stops, context, horizon, patch_len, segment_tokens,
                batch_size if training else eval_batch_size, shuffle=training and shuffle,
                seed=seed, rank=rank, world_size=world_size, merge_unscored=not training)
        else:
            datasets[name] = WindowDataset(prepared, origins, context, horizon,
                                           stride if training else 1)
    if len(datasets["train"]) == 0:
        longest = max(b[0] for b in borders)
        raise ValueError(f"too short: a training origin needs {needs} + horizon = "
                         f"{context + horizon} rows of the training part, the longest series "
                         f"has {longest}; use a shorter lookback/horizon, a smaller "
                         "validation part (val_fraction) or more data")
    return datasets
