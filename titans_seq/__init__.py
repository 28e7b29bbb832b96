"""titans_seq: the Titans neural long-term memory for time series and DNA sequences."""

from .anomaly import TitansAnomalyDetector
from .attention import PersistentMemory, SlidingWindowAttention
from .blocks import EncoderState, TitansEncoder
from .classification import ClassificationModule, PretrainingModule, TitansClassifier
from .forecasting import ForecastingModule, TitansForecaster
from .memory import (MemoryState, NeuralMemory, NeuralMemoryState, memory_scan,
                     memory_scan_reference)

__version__ = "0.1.0"

__all__ = ["ClassificationModule", "EncoderState", "ForecastingModule", "MemoryState",
           "NeuralMemory", "NeuralMemoryState", "PersistentMemory", "PretrainingModule",
           "SlidingWindowAttention",
           "TitansAnomalyDetector", "TitansClassifier", "TitansEncoder", "TitansForecaster",
           "memory_scan", "memory_scan_reference", "__version__"]
