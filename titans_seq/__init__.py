"""titans_seq: the Titans neural long-term memory for time series and DNA sequences."""

from .attention import PersistentMemory, SlidingWindowAttention
from .blocks import EncoderState, TitansEncoder
from .forecasting import ForecastingModule, TitansForecaster
from .memory import (MemoryState, NeuralMemory, NeuralMemoryState, memory_scan,
                     memory_scan_reference)

__version__ = "0.1.0"

__all__ = ["EncoderState", "ForecastingModule", "TitansForecaster", "PersistentMemory", "SlidingWindowAttention", "TitansEncoder",
           "MemoryState", "NeuralMemory", "NeuralMemoryState", "memory_scan",
           "memory_scan_reference", "__version__"]
