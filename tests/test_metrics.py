"""The forecast metrics against hand-computed values, the quantile CRPS against the closed-form
CRPS of a Gaussian forecast, and ``evaluate`` on a tiny cross-validation frame of two models,
two series and two cutoffs, per series, per horizon step, per both and over everything."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import polars as pl
import pytest

from titans_seq.metrics import (coverage, crps, evaluate, mae, mase, mse, pinball,
                                smape, width)

# -- per-array metrics -------------------------------------------------------------------------
Y, Y_HAT = [1.0, 2.0, 3.0], [2.0, 2.0, 5.0]  # errors y - ŷ: -1, 0, -2


def test_mse_mae_smape_by_hand():
    assert mse(Y, Y_HAT) == pytest.approx(5 / 3)  # (1 + 0 + 4) / 3
    assert mae(Y, Y_HAT) == pytest.approx(1.0)  # (1 + 0 + 2) / 3
    # 200/3 · (|1-2|/(1+2) + 0/(2+2) + |3-5|/(3+5))
    assert smape(Y, Y_HAT) == pytest.approx(200 / 3 * (1 / 3 + 0 + 2 / 8))


def test_mse_and_mae_are_computed_in_float64():
    # 1e8 + 1 is not a float32: in float32 both errors would be 0 or 8
    y, y_hat = 1e8 + np.array([0.0, 1.0]), 1e8 + np.array([1.0, 1.0])
    assert mse(y, y_hat) == 0.5 and mae(y, y_hat) == 0.5


def test_smape_counts_zero_over_zero_as_zero_and_tops_out_at_200():
    assert smape([0.0, 1.0], [0.0, 3.0]) == pytest.approx(50.0)  # 200/2 · (0 + 2/4)
    assert smape([0.0], [0.0]) == 0.0
    assert smape([0.0, 0.0], [2.0, -1.0]) == pytest.approx(200.0)  # each term |ŷ|/|ŷ| = 1


@pytest.mark.parametrize("season_length, expected", [
    # y_train = 1, 3, 2, 6, 4; MAE of y = 5, 7 against ŷ = 4, 9: (1 + 2) / 2 = 1.5
    (1, 1.5 / ((2 + 1 + 4 + 2) / 4)),  # |3-1|, |2-3|, |6-2|, |4-6|: scale 9/4
    (2, 1.5 / ((1 + 3 + 2) / 3)),  # |2-1|, |6-3|, |4-2|: scale 2
])
def test_mase_by_hand(season_length, expected):
    assert mase([5.0, 7.0], [4.0, 9.0], [1.0, 3.0, 2.0, 6.0, 4.0],
                season_length) == pytest.approx(expected)


def test_mase_leaves_out_training_differences_with_a_missing_end():
    # pairs (1, 3) and (2, 6) only: scale (2 + 4) / 2 = 3; MAE 1.5
    assert mase([5.0, 7.0], [4.0, 9.0], [1.0, 3.0, np.nan, 2.0, 6.0]) == pytest.approx(0.5)


def test_coverage_and_width_by_hand():
    y, lo, hi = [1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 3.5, 0.0], [1.0, 3.0, 4.0, 3.0]
    assert coverage(y, lo, hi) == 0.5  # 1 in [0, 1] and 2 in [2, 3]: bounds count as inside
    assert width(lo, hi) == pytest.approx((1 + 1 + 0.5 + 3) / 4)


@pytest.mark.parametrize("q, expected", [
    # y = 1, 2, 5 and ŷ = 2: errors e = -1, 0, 3; terms max(q·e, (q-1)·e)
    (0.1, (0.9 + 0 + 0.3) / 3),
    (0.5, (0.5 + 0 + 1.5) / 3),
    (0.9, (0.1 + 0 + 2.7) / 3),
])
def test_pinball_by_hand(q, expected):
    assert pinball([1.0, 2.0, 5.0], [2.0, 2.0, 2.0], q) == pytest.approx(expected)


def test_crps_from_quantiles_by_hand():
    y = [1.0, 2.0, 5.0]
    q_hats = [[0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [2.0, 4.0, 6.0]]  # levels 0.1, 0.5, 0.9
    # pinball terms, row by row: (0.1, 0, 0.1), (0.1, 0, 0.1), (0.3, 0.5, 0.1): sum 1.3
    assert crps(y, q_hats, [0.1, 0.5, 0.9]) == pytest.approx(2 * 1.3 / 9)
    # a point forecast at every (symmetric) level: the CRPS of a point is the MAE
    assert crps(y, [[2.0] * 3] * 3, [0.1, 0.5, 0.9]) == pytest.approx(mae(y, [2.0] * 3))


def _gaussian_crps(y: float, mu: float, sigma: float) -> float:
    z, unit = (y - mu) / sigma, NormalDist()
    return sigma * (z * (2 * unit.cdf(z) - 1) + 2 * unit.pdf(z) - 1 / math.sqrt(math.pi))


@pytest.mark.parametrize("y", [-3.0, 0.0, 1.0, 2.5, 6.0])
def test_crps_from_many_quantiles_of_a_normal_approaches_the_closed_form(y):
    # K midpoint levels (k - 1/2)/K of N(1, 2²): the midpoint rule on 2∫ρ_q dq errs by
    # O(σ/K²) (the kink at q = F(y) costs about one cell; the ends, where F⁻¹ grows like
    # √(2 log 1/q), add a term of the same order); measured, it stays under 5σ/K² for these y,
    # so 10σ/K² = 2e-5 leaves a factor of two — and is 4e4 times smaller than dropping the
    # factor 2 (the CRPS here is about 0.9 to 3).
    mu, sigma, levels = 1.0, 2.0, (np.arange(1, 1000) - 0.5) / 999
    q_hats = mu + sigma * np.array([NormalDist().inv_cdf(q) for q in levels])
    exact = _gaussian_crps(y, mu, sigma)
    assert crps([y], q_hats[None], levels) == pytest.approx(exact, abs=10 * sigma / 999 ** 2)
    coarse = (np.arange(1, 10) - 0.5) / 9  # and it converges: nine levels are further off
    coarse_hats = mu + sigma * np.array([NormalDist().inv_cdf(q) for q in coarse])
    assert abs(crps([y], coarse_hats[None], coarse) - exact) > 10 * sigma / 999 ** 2


def test_nan_actuals_are_left_out():
    y = [1.0, np.nan, 5.0]
    assert mse(y, [2.0, 100.0, 2.0]) == pytest.approx((1 + 9) / 2)
    assert mae(y, [2.0, 100.0, 2.0]) == pytest.approx((1 + 3) / 2)
    assert smape(y, [1.0, 100.0, 0.0]) == pytest.approx(200 / 2 * (0 + 1))
    assert pinball(y, [2.0, 100.0, 2.0], 0.9) == pytest.approx((0.1 + 2.7) / 2)
    assert crps(y, [[2.0], [100.0], [2.0]], [0.5]) == pytest.approx(2 * (0.5 + 1.5) / 2)
    assert coverage(y, [0.0, 0.0, 0.0], [2.0, 2.0, 2.0]) == 0.5  # the NaN row counts nowhere
    assert mase(y, [2.0, 100.0, 2.0], [0.0, 2.0]) == pytest.approx(2.0 / 2.0)


@pytest.mark.parametrize("call, message", [
    (lambda: mse([1.0, 2.0], [1.0, np.nan]), r"y_hat has 1 NaN/inf value\(s\), first at index 1"),
    (lambda: mae([1.0, 2.0], [np.inf, 1.0]), "y_hat has 1 NaN/inf"),
    (lambda: smape([1.0], [np.nan]), "y_hat has 1 NaN/inf"),
    (lambda: mse([1.0, 2.0], [1.0, 2.0, 3.0]), "y_hat has shape"),
    (lambda: mse([np.nan, np.nan], [1.0, 2.0]), "y has no observed value"),
    (lambda: mse([], []), "y has no observed value"),
    (lambda: mse([1.0, np.inf], [1.0, 2.0]), "y has infinite values"),
    (lambda: mase([1.0], [1.0], [3.0, 3.0, 3.0]), "is constant"),
    (lambda: mase([1.0], [1.0], [1.0, 2.0], season_length=2), "no two observed values"),
    (lambda: mase([1.0], [1.0], [[1.0, 2.0]]), "must be 1-D"),
    (lambda: mase([1.0], [1.0], [1.0, 2.0], season_length=0), "season_length must be"),
    (lambda: mase([1.0], [1.0], [1.0, 2.0], season_length=True), "season_length must be"),
    (lambda: coverage([1.0], [2.0], [1.0]), "lo > hi"),
    (lambda: coverage([1.0], [np.nan], [1.0]), "lo has 1 NaN/inf"),
    (lambda: width([0.0, 2.0], [1.0, 1.0]), r"lo > hi at 1 place\(s\), first at index \(1,\)"),
    (lambda: width([0.0], [np.inf]), "hi has 1 NaN/inf"),
    (lambda: width([0.0], [1.0, 2.0]), "lo has shape"),
    (lambda: pinball([1.0], [1.0], 0.0), r"q must be a finite number > 0.0 and < 1.0"),
    (lambda: pinball([1.0], [1.0], 1.0), "q must be"),
    (lambda: pinball([1.0], [np.nan], 0.5), "q_hat has 1 NaN/inf"),
    (lambda: crps([1.0], [[1.0, 2.0]], [0.9, 0.1]), "sorted and unique"),
    (lambda: crps([1.0], [[1.0, 2.0]], [0.5, 0.5]), "sorted and unique"),
    (lambda: crps([1.0], [[1.0, 2.0]], [0.0, 0.5]), "quantiles must be"),
    (lambda: crps([1.0], [[1.0, 2.0]], []), "non-empty"),
    (lambda: crps([1.0], [[1.0, 2.0]], [0.1, 0.5, 0.9]), r"must have shape \(1, 3\)"),
    (lambda: crps([1.0], [[1.0, np.nan]], [0.1, 0.9]), "q_hats has 1 NaN/inf"),
])
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_non_numbers_are_a_type_error():
    with pytest.raises(TypeError, match="y_hat must be an array of numbers"):
        mse([1.0], ["a"])


# -- evaluate ----------------------------------------------------------------------------------
# errors e = y - ŷ of model A and B; the last row's actual is missing (left out)
ROWS = [  # unique_id, cutoff, ds, y, A, B        eA  eB
    ("a", 2, 3, 6.0, 5.0, 6.0),             # 1   0
    ("a", 2, 4, 8.0, 8.0, 5.0),             # 0   3
    ("a", 3, 4, 8.0, 9.0, 8.0),             # -1  0
    ("a", 3, 5, 10.0, 8.0, 10.0),           # 2   0
    ("b", 2, 3, 12.0, 12.0, 11.0),          # 0   1
    ("b", 2, 4, 10.0, 13.0, 10.0),          # -3  0
    ("b", 3, 4, 10.0, 10.0, 12.0),          # 0   -2
    ("b", 3, 5, np.nan, 11.0, 11.0),        # missing
]
# seasonal naive scales (m = 1): a |2-0|, |4-2| → 2; b |11-10|, |10-11|, |11-10| → 1
TRAIN = pd.DataFrame({"unique_id": ["a"] * 3 + ["b"] * 4, "ds": [0, 1, 2, -1, 0, 1, 2],
                      "y": [0.0, 2.0, 4.0, 10.0, 11.0, 10.0, 11.0]})


def cv_frame(intervals: bool = False, quantiles: bool = False) -> pd.DataFrame:
    frame = pd.DataFrame(ROWS, columns=["unique_id", "cutoff", "ds", "y", "A", "B"])
    if intervals:  # A ± 1 (± 5 on the row without an actual), B ± 3
        spread = np.where(frame["y"].isna(), 5.0, 1.0)
        frame["A-lo-90"], frame["A-hi-90"] = frame["A"] - spread, frame["A"] + spread
        frame["B-lo-90"], frame["B-hi-90"] = frame["B"] - 3.0, frame["B"] + 3.0
    if quantiles:
        for model in ("A", "B"):
            for q, shift in ((0.1, -1.0), (0.5, 0.0), (0.9, 1.0)):
                frame[f"{model}_q{q}"] = frame[model] + shift
    return frame.iloc[::-1].reset_index(drop=True)  # out of order: evaluate sorts by ds


def table(result: pd.DataFrame, keys: list[str]) -> dict:
    return {tuple(row[keys + ["metric"]]): (row["A"], row["B"]) for _, row in result.iterrows()}


def test_evaluate_per_unique_id_by_hand():
    result = evaluate(cv_frame(), train=TRAIN)
    assert list(result.columns) == ["unique_id", "metric", "A", "B"]
    assert list(result["unique_id"]) == ["a"] * 4 + ["b"] * 4
    assert list(result["metric"]) == ["mse", "mae", "mase", "smape"] * 2
    expected = {
        ("a", "mse"): ((1 + 0 + 1 + 4) / 4, 9 / 4), ("a", "mae"): (4 / 4, 3 / 4),
        ("a", "mase"): (1.0 / 2, 0.75 / 2),
        ("a", "smape"): (50 * (1 / 11 + 0 + 1 / 17 + 2 / 18), 50 * (3 / 13)),
        ("b", "mse"): (9 / 3, 5 / 3), ("b", "mae"): (3 / 3, 3 / 3),
        ("b", "mase"): (1.0, 1.0),
        ("b", "smape"): (200 / 3 * (3 / 23), 200 / 3 * (1 / 23 + 2 / 22)),
    }
    got = table(result, ["unique_id"])
    assert got.keys() == expected.keys()
    for key, values in expected.items():
        assert got[key] == pytest.approx(values), key


def test_evaluate_per_horizon_by_hand():
    # step 1: (a,2,3) (a,3,4) (b,2,3) (b,3,4); step 2: (a,2,4) (a,3,5) (b,2,4), (b,3,5) missing
    result = evaluate(cv_frame(), metrics=["mse", "mae", "mase"], train=TRAIN, per="horizon")
    assert list(result.columns) == ["horizon", "metric", "A", "B"]
    expected = {
        (1, "mse"): (2 / 4, 5 / 4), (1, "mae"): (2 / 4, 3 / 4),
        (2, "mse"): (13 / 3, 9 / 3), (2, "mae"): (5 / 3, 3 / 3),
        # errors over their own series' scale, then averaged: a's / 2, b's / 1
        (1, "mase"): ((0.5 + 0.5 + 0 + 0) / 4, (0 + 0 + 1 + 2) / 4),
        (2, "mase"): ((0 + 1 + 3) / 3, (1.5 + 0 + 0) / 3),
    }
    got = table(result, ["horizon"])
    assert got.keys() == expected.keys()
    for key, values in expected.items():
        assert got[key] == pytest.approx(values), key


def test_evaluate_per_unique_id_and_horizon_by_hand():
    result = evaluate(cv_frame(), metrics=["mse", "mae"], per=("unique_id", "horizon"))
    assert list(result.columns) == ["unique_id", "horizon", "metric", "A", "B"]
    expected = {
        ("a", 1, "mse"): (1.0, 0.0), ("a", 1, "mae"): (1.0, 0.0),
        ("a", 2, "mse"): (2.0, 4.5), ("a", 2, "mae"): (1.0, 1.5),
        ("b", 1, "mse"): (0.0, 2.5), ("b", 1, "mae"): (0.0, 1.5),
        ("b", 2, "mse"): (9.0, 0.0), ("b", 2, "mae"): (3.0, 0.0),
    }
    got = table(result, ["unique_id", "horizon"])
    assert list(got) == list(expected)  # sorted by series, then step
    for key, values in expected.items():
        assert got[key] == pytest.approx(values), key


def test_evaluate_over_everything_by_hand():
    result = evaluate(cv_frame(), metrics=["mse", "mae", "mase"], train=TRAIN, per=None)
    assert list(result.columns) == ["metric", "A", "B"]
    got = table(result, [])
    assert got[("mse",)] == pytest.approx((15 / 7, 14 / 7))  # eA² 1,0,1,4,0,9,0; eB² 0,9,0,0,1,0,4
    assert got[("mae",)] == pytest.approx((7 / 7, 6 / 7))
    assert got[("mase",)] == pytest.approx(((0.5 + 0 + 0.5 + 1 + 0 + 3 + 0) / 7,
                                            (0 + 1.5 + 0 + 0 + 1 + 0 + 2) / 7))


def test_evaluate_without_cutoff_counts_steps_per_series():
    frame = pd.DataFrame({"unique_id": ["a"] * 3, "ds": [3, 1, 2], "y": [1.0, 1.0, 1.0],
                          "A": [4.0, 2.0, 3.0]})  # errors by ds: 1, 2, 3
    result = evaluate(frame, metrics="mae", per="horizon")
    assert list(result["horizon"]) == [1, 2, 3]
    assert list(result["A"]) == [1.0, 2.0, 3.0]


def test_evaluate_intervals_by_hand():
    result = evaluate(cv_frame(intervals=True), metrics=["coverage", "width"])
    assert list(result.columns) == ["unique_id", "metric", "A", "B"]  # bounds are no models
    got = table(result, ["unique_id"])
    # A ± 1: a's |eA| 1, 0, 1, 2 → 3/4 inside; b's 0, 3, 0 → 2/3 (the missing actual counts not)
    assert got[("a", "coverage-90")] == pytest.approx((3 / 4, 4 / 4))
    assert got[("b", "coverage-90")] == pytest.approx((2 / 3, 3 / 3))
    # every interval counts for the width, the one without an actual (± 5) too
    assert got[("a", "width-90")] == pytest.approx((2.0, 6.0))
    assert got[("b", "width-90")] == pytest.approx(((2 + 2 + 2 + 10) / 4, 6.0))


def test_evaluate_names_each_interval_level():
    frame = cv_frame()
    for model in ("A", "B"):
        for level, spread in (("90", 2.0), ("80.5", 1.0)):
            frame[f"{model}-lo-{level}"] = frame[model] - spread
            frame[f"{model}-hi-{level}"] = frame[model] + spread
    result = evaluate(frame, metrics=["width"], per=None)
    assert list(result["metric"]) == ["width-80.5", "width-90"]
    assert list(result["A"]) == [2.0, 4.0]


def test_evaluate_quantiles_match_the_array_functions_and_a_hand_value():
    frame = cv_frame(quantiles=True)
    result = table(evaluate(frame, metrics=["pinball", "crps"], per=None), [])
    rows = frame.dropna(subset=["y"])
    for index, model in enumerate(("A", "B")):
        columns = [f"{model}_q{q}" for q in (0.1, 0.5, 0.9)]
        levels = [0.1, 0.5, 0.9]
        expected = np.mean([pinball(rows["y"], rows[c], q) for c, q in zip(columns, levels)])
        assert result[("pinball",)][index] == pytest.approx(expected)
        assert result[("crps",)][index] == pytest.approx(
            crps(rows["y"], rows[columns].to_numpy(), levels))
    # by hand for A: e = 1, 0, -1, 2, 0, -3, 0 against q̂ = ŷ - 1, ŷ, ŷ + 1, so the error of
    # level q is e + 1, e, e - 1; per row ρ_0.1(e + 1) + ρ_0.5(e) + ρ_0.9(e - 1)
    per_row = {1: 0.2 + 0.5 + 0.0, 0: 0.1 + 0.0 + 0.1, -1: 0.0 + 0.5 + 0.2,
               2: 0.3 + 1.0 + 0.9, -3: 1.8 + 1.5 + 0.4}
    errors = [1, 0, -1, 2, 0, -3, 0]
    assert result[("crps",)][0] == pytest.approx(2 * sum(per_row[e] for e in errors) / 21)


def test_evaluate_polars_in_polars_out():
    frame = cv_frame()
    result = evaluate(pl.DataFrame({c: frame[c].tolist() for c in frame.columns}),
                      metrics=["mae"], per=None)
    assert isinstance(result, pl.DataFrame)
    assert result.columns == ["metric", "A", "B"]
    assert result["metric"].to_list() == ["mae"]
    assert (result["A"][0], result["B"][0]) == pytest.approx((1.0, 6 / 7))


def test_evaluate_takes_train_as_a_dict_or_polars_frame():
    dict_train = {"a": np.array([0.0, 2.0, 4.0]), "b": np.array([10.0, 11.0, 10.0, 11.0])}
    polars_train = pl.DataFrame({c: TRAIN[c].tolist() for c in TRAIN.columns})
    reference = evaluate(cv_frame(), metrics="mase", train=TRAIN)
    for train in (dict_train, polars_train):
        pd.testing.assert_frame_equal(evaluate(cv_frame(), metrics="mase", train=train), reference)


def test_evaluate_orders_training_rows_by_ds():
    shuffled = TRAIN.iloc[[2, 0, 1, 3, 4, 5, 6]]  # a as 4, 0, 2: scale 3 if read as it comes
    result = table(evaluate(cv_frame(), metrics="mase", train=shuffled), ["unique_id"])
    assert result[("a", "mase")] == pytest.approx((0.5, 0.375))


def test_evaluate_season_length_two():
    # TRAIN's b at lag 2: |10-10|, |11-11| → 0, constant at that season: refused
    with pytest.raises(ValueError, match="'b' is constant"):
        evaluate(cv_frame(), metrics="mase", train=TRAIN, season_length=2)
    # a 0, 2, 4: |4-0| → 4; b 10, 11, 13, 11: |13-10|, |11-11| → 1.5 (lag 1 would give 5/3)
    train = {"a": [0.0, 2.0, 4.0], "b": [10.0, 11.0, 13.0, 11.0]}
    got = table(evaluate(cv_frame(), metrics="mase", train=train, season_length=2),
                ["unique_id"])
    assert got[("a", "mase")] == pytest.approx((1.0 / 4, 0.75 / 4))
    assert got[("b", "mase")] == pytest.approx((1.0 / 1.5, 1.0 / 1.5))


def test_evaluate_a_window_without_actuals_scores_nan_but_width():
    frame = cv_frame(intervals=True)
    frame.loc[frame["unique_id"] == "b", "y"] = np.nan
    got = table(evaluate(frame, metrics=["mae", "coverage", "width"]), ["unique_id"])
    assert np.isnan(got[("b", "mae")]).all() and np.isnan(got[("b", "coverage-90")]).all()
    assert got[("b", "width-90")] == pytest.approx((4.0, 6.0))
    assert got[("a", "mae")] == pytest.approx((1.0, 0.75))


def _without(column: str) -> pd.DataFrame:
    return cv_frame().drop(columns=column)


def _with(column: str, row: int, value: float) -> pd.DataFrame:
    frame = cv_frame()
    frame.loc[row, column] = value
    return frame


@pytest.mark.parametrize("kwargs, message", [
    (dict(frame=_without("y")), r"lacks the column\(s\) \['y'\]"),
    (dict(frame=_without("unique_id")), r"\['unique_id'\]"),
    (dict(frame=cv_frame().iloc[:0]), "no rows"),
    (dict(frame=cv_frame(), metrics=["mse", "rmse"]),
     r"unknown metric\(s\) \['rmse'\]; the metrics are mse, mae, mase, smape"),
    (dict(frame=cv_frame(), metrics=[]), "unknown metric"),
    (dict(frame=_with("B", 3, np.nan), metrics="mse"),
     r"column 'B' has 1 NaN/inf value\(s\), first at unique_id=b, cutoff=2, ds=3"),
    (dict(frame=_with("A", 0, np.inf), metrics="mse"), "column 'A' has 1 NaN/inf"),
    (dict(frame=_with("y", 0, np.inf), metrics="mse"), "'y' has infinite values"),
    (dict(frame=pd.concat([cv_frame(), cv_frame().iloc[:1]]), metrics="mse"),
     r"1 duplicate row\(s\) of \(unique_id, cutoff, ds\), first at unique_id=b"),
    (dict(frame=cv_frame(), metrics="mse", models=["A", "C"]), r"models \['C'\]"),
    (dict(frame=cv_frame().assign(note="x"), metrics="mse"), "column 'note'"),
    (dict(frame=cv_frame(), metrics="mse", per="cutoff"), "per must be None, 'unique_id'"),
    (dict(frame=cv_frame(), metrics="mase"), "mase needs train"),
    (dict(frame=cv_frame(), metrics="mase", train=TRAIN[TRAIN["unique_id"] == "a"]),
     "series 'b' has no training rows"),
    (dict(frame=cv_frame(), metrics="mase", train={"a": [0.0, 1.0], "b": []}),
     "training series 'b' has no two observed values"),
    (dict(frame=cv_frame(), metrics="mase", train=TRAIN, season_length=0), "season_length"),
    (dict(frame=cv_frame(), metrics="coverage"),
     "coverage needs interval columns such as A-lo-90 and A-hi-90.*coverage=0.9"),
    (dict(frame=cv_frame(intervals=True).drop(columns="B-hi-90"), metrics="width"),
     r"width needs the interval column\(s\) \['B-hi-90'\]"),
    (dict(frame=cv_frame(), metrics="crps"), "crps needs quantile columns such as A_q0.1"),
    (dict(frame=cv_frame(quantiles=True).drop(columns="B_q0.5"), metrics="pinball"),
     r"pinball needs the quantile column\(s\) \['B_q0.5'\]"),
])
def test_evaluate_refuses_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate(**kwargs)


def test_evaluate_refuses_crossed_bounds():
    frame = cv_frame(intervals=True)
    frame.loc[0, "A-lo-90"] = 100.0
    with pytest.raises(ValueError, match="A-lo-90 > A-hi-90 in 1 row"):
        evaluate(frame, metrics="coverage")


@pytest.mark.parametrize("frame, message", [
    ({"unique_id": ["a"], "ds": [1], "y": [1.0], "A": [1.0]}, "must be a pandas or polars"),
    (np.zeros((2, 3)), "must be a pandas or polars"),
    (pl.DataFrame({"unique_id": ["a"], "ds": [1], "y": [1.0], "A": [1.0]}).lazy(),
     "LazyFrame; collect"),
])
def test_evaluate_refuses_what_is_not_a_frame(frame, message):
    with pytest.raises(TypeError, match=message):
        evaluate(frame)
