"""titans_seq: the Titans neural long-term memory for time series and DNA sequences."""

from .attention import PersistentMemory, SlidingWindowAttention
from .blocks import EncoderState, TitansEncoder
from .classification import ClassificationModule, TitansClassifier
from .forecasting import ForecastingModule, TitansForecaster
from .memory import (MemoryState, NeuralMemory, NeuralMemoryState, memory_scan,
                     memory_scan_reference)

__version__ = "0.1.0"

__all__ = ["ClassificationModule", "EncoderState", "ForecastingModule", "MemoryState",
           "PersistentMemory", "SlidingWindowAttention", "TitansClassifier", "TitansEncoder",
           "TitansForecaster", "NeuralMemory", "NeuralMemoryState", "memory_scan",
           "memory_scan_reference", "__version__"]
