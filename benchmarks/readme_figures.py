"""The README's two pictures, made with ``titans_seq.plotting`` (never by hand):

- ``docs/forecast.png``: the default forecaster (3 epochs) on ETTh1 (embedded), a 96-row
  forecast of ``OT`` after the validation part with its 90 % conformal band and the actual
  rows;
- ``docs/surprise.png``: the Titans anomaly detector on NAB's ``nyc_taxi`` stream (from
  ``shared/data/anomaly``), its score beneath, NAB's labelled windows shaded.

    python benchmarks/readme_figures.py [--anomaly-data ../shared/data/anomaly]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.nab_scoring import load_corpus, probation_rows  # noqa: E402
from datamodules.datasets import load_etth1  # noqa: E402
from datamodules.timeseries.datamodule import ETT_HOUR_BORDERS  # noqa: E402
from titans_seq import TitansAnomalyDetector, TitansForecaster  # noqa: E402
from titans_seq.plotting import plot_forecast, plot_surprise  # noqa: E402

TRAIN_END, VAL_END, _ = ETT_HOUR_BORDERS


def forecast_figure(path: Path) -> None:
    frame = load_etth1()
    model = TitansForecaster(horizon=96, max_epochs=3, random_state=0,
                             calibration_window=720,
                             val_fraction=(VAL_END - TRAIN_END) / VAL_END)
    model.fit(frame.iloc[:VAL_END])
    interval = model.predict_interval(coverage=0.9)[["date", "OT-lo-90", "OT", "OT-hi-90"]]
    figure = plot_forecast(interval, history=frame.iloc[:VAL_END][["date", "OT"]],
                           actual=frame.iloc[VAL_END:VAL_END + 96][["date", "OT"]], last=336)
    figure.axes[0].set_title("ETTh1 OT: the long-memory forecaster (3 epochs) after 11,520 "
                             "rows, 90 % conformal band")
    figure.savefig(path, dpi=110)


def surprise_figure(path: Path, anomaly_data: Path) -> None:
    frame, windows = load_corpus(anomaly_data)["realKnownCause/nyc_taxi.csv"]
    probation = probation_rows(len(frame))
    detector = TitansAnomalyDetector(random_state=0).fit(frame.iloc[:probation])
    scores = np.r_[np.zeros(probation), detector.anomaly_score(frame.iloc[probation:])]
    stamps = frame["timestamp"]
    figure = plot_surprise(frame, scores, threshold=0.5, probation=probation,
                           windows=[(stamps.iloc[a], stamps.iloc[b]) for a, b in windows])
    figure.axes[0].set_title("NAB nyc_taxi: taxi passengers per 30 min, the Titans detector's "
                             "score, labelled windows shaded")
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--anomaly-data", default=str(ROOT.parent / "shared" / "data" /
                                                      "anomaly"))
    args = parser.parse_args(argv)
    out = ROOT / "docs"
    out.mkdir(exist_ok=True)
    forecast_figure(out / "forecast.png")
    surprise_figure(out / "surprise.png", Path(args.anomaly_data))
    print(f"wrote {out / 'forecast.png'} and {out / 'surprise.png'}")


if __name__ == "__main__":
    main()
