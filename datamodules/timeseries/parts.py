"""Train / validation / test datasets of prepared series: the one place where forecast origins
are laid out, and where a :class:`ForecastLayout`'s mode picks the kind of dataset, used by
:class:`TimeSeriesDataModule` (and so by ``TitansForecaster.fit``)."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset, IterableDataset

from .layout import ForecastLayout
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


def _lane_segments(prepared: list[PreparedSeries], origins, stops, layout: ForecastLayout,
                   training: bool, options: dict) -> LaneSegments:
    """``mode="stream"``: segments of ``batch_size`` lanes (``eval_batch_size`` for validation
    and test, whose unscored segments are merged)."""
    return LaneSegments(
        prepared, origins, stops, layout.context, layout.horizon, layout.patch_len,
        layout.segment_tokens,
        options["batch_size"] if training else options["eval_batch_size"],
        shuffle=training and options["shuffle"], seed=options["seed"], rank=options["rank"],
        world_size=options["world_size"], merge_unscored=not training)


def _windows(prepared: list[PreparedSeries], origins, stops, layout: ForecastLayout,
             training: bool, options: dict) -> WindowDataset:
    """``mode="window"``: windows of ``context`` rows, training origins every ``stride``."""
    return WindowDataset(prepared, origins, layout.context, layout.horizon,
                         options["stride"] if training else 1)


_DATASETS: dict[str, Callable] = {"stream": _lane_segments, "window": _windows}


def forecast_datasets(prepared: list[PreparedSeries], borders: Sequence[tuple[int, int, int]],
                      layout: ForecastLayout, *, batch_size: int, eval_batch_size: int,
                      stride: int = 1, shuffle: bool = True, seed: int = 0, rank: int = 0,
                      world_size: int = 1) -> dict[str, LaneSegments | WindowDataset]:
    """The datasets of the three parts (a part without origins is empty), of the kind the
    layout's mode reads. Raises ``ValueError`` when no training origin exists, naming the
    settings the context is made of."""
    options = dict(batch_size=batch_size, eval_batch_size=eval_batch_size, stride=stride,
                   shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)
    build = _DATASETS[layout.mode]
    check_training_origins(borders, layout)
    datasets = {name: build(prepared, origins, stops, layout, name == "train", options)
                for name, (origins, stops) in part_origins(borders, layout.context,
                                                           layout.horizon).items()}
    return datasets


def check_training_origins(borders: Sequence[tuple[int, int, int]], layout: ForecastLayout
                           ) -> None:
    """Raise ``ValueError`` when no series has a training origin (too few rows), naming the
    settings the context is made of: checked before anything is fitted on the rows."""
    origins, _ = part_origins(borders, layout.context, layout.horizon)["train"]
    if not any(last >= first for first, last in origins):
        longest = max(b[0] for b in borders)
        raise ValueError(f"too short: too few rows for a training origin, which needs "
                         f"{layout.context_rule} + horizon = {layout.context + layout.horizon} "
                         f"rows of the training part; the longest training part has "
                         f"{longest}; use a shorter "
                         "lookback/horizon, a smaller validation part (val_fraction) or more "
                         "data")


class WholeSeries(Dataset):
    """Each whole series as one item, a batch of its own (``values, observed (T, C)``,
    ``covariates (T', F)``, ``static (S,)``): a model whose memory reads the whole history
    forecasts from its end."""

    items_are_batches = True  # a loader passes items through as they are

    def __init__(self, series: list[PreparedSeries]) -> None:
        self.series = series

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        item = self.series[index]
        return {"values": item.values, "observed": item.observed,
                "covariates": item.covariates, "static": item.static}


class OnlineTestSeries(IterableDataset):
    """Each whole series up to the end of its test part as one batch, with the test part's
    first and last origins (``origins``: ``[first, stop)``), for a model that forecasts every
    test origin as the series arrive and keeps learning from what it has seen (the online
    protocol). The origins are those of the test part's other datasets. Every process of a
    distributed run reads every series (a series' memory is read in order; the model scores
    its share of the origins)."""

    items_are_batches = True  # a loader passes items through as they are

    def __init__(self, series: list[PreparedSeries], origins: list[tuple[int, int]],
                 stops: list[int]) -> None:
        kept = [index for index, (first, last) in enumerate(origins) if last >= first]
        self.series = WholeSeries([head_rows(series[i], stops[i]) for i in kept])
        self.origins = [(origins[i][0], origins[i][1] + 1) for i in kept]

    def __len__(self) -> int:
        return len(self.series)

    def __iter__(self):
        for index, origins in enumerate(self.origins):
            yield {**self.series[index], "origins": torch.tensor(origins, dtype=torch.long)}


def head_rows(series: PreparedSeries, stop: int) -> PreparedSeries:
    """The first ``stop`` rows of a series (its covariates too)."""
    return PreparedSeries(series.values[:stop], series.observed[:stop],
                          series.covariates[:stop], series.static)


def online_test_dataset(prepared: list[PreparedSeries],
                        borders: Sequence[tuple[int, int, int]], layout: ForecastLayout
                        ) -> OnlineTestSeries:
    """The test part as :class:`OnlineTestSeries`."""
    origins, stops = part_origins(borders, layout.context, layout.horizon)["test"]
    return OnlineTestSeries(prepared, origins, stops)


def _whole_series(ahead: list[PreparedSeries], lengths: list[int], layout: ForecastLayout
                  ) -> WholeSeries:
    """``mode="stream"``: each whole series (its memory reads it from the first row)."""
    return WholeSeries(ahead)


def _last_windows(ahead: list[PreparedSeries], lengths: list[int], layout: ForecastLayout
                  ) -> WindowDataset:
    """``mode="window"``: the window that ends at each series' end."""
    return WindowDataset(ahead, [(length, length) for length in lengths], layout.context,
                         layout.horizon)


# per mode: the rows a forecast from the end needs (named, counted), what its batches hold
_PREDICT = {"stream": (lambda layout: ("lookback", layout.lookback), _whole_series),
            "window": (lambda layout: (layout.context_rule, layout.context), _last_windows)}


def predict_dataset(ahead: list[PreparedSeries], ids: list, lengths: list[int],
                    layout: ForecastLayout) -> WholeSeries | WindowDataset:
    """What forecasts past the end of each series read (``ahead``: the series prepared with
    ``horizon`` rows of covariates past their ends)."""
    needs, build = _PREDICT[layout.mode]
    rule, rows = needs(layout)
    short = [key for key, n in zip(ids, lengths) if n < rows]
    if short:
        raise ValueError(f"series {short[:5]} have fewer than {rule} = {rows} rows, so there "
                         "is no window to forecast from")
    return build(ahead, lengths, layout)
