"""titans_seq: the Titans neural long-term memory for time series and DNA sequences.

The public names below are imported on first use (PEP 562): importing one floor of the
package (``titans_seq.memory``, say) does not import the floors above it, so the data package
(:mod:`datamodules`) may build on the bottom floor's parameter rules without a cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "TitansAnomalyDetector": ".anomaly", "StreamAnomalyDetector": ".anomaly",
    "PersistentMemory": ".attention", "SlidingWindowAttention": ".attention",
    "EncoderConfig": ".blocks", "EncoderState": ".blocks", "TitansEncoder": ".blocks",
    "ClassificationModule": ".classification", "PretrainingModule": ".classification",
    "TitansClassifier": ".classification",
    "ForecastConfig": ".forecasting", "ForecastingModule": ".forecasting",
    "TitansForecaster": ".forecasting",
    "MemoryState": ".memory", "NeuralMemory": ".memory", "NeuralMemoryState": ".memory",
    "memory_scan": ".memory", "memory_scan_reference": ".memory",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'titans_seq' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
