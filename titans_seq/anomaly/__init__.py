"""Surprise as a signal: a Titans memory that reads a stream row by row, the streaming
anomaly detector built on it, and a streaming detector whose seasonal and value memories learn
the stream as it scores."""

from .calibration import SurpriseLikelihood
from .detector import TitansAnomalyDetector
from .module import SurpriseModule
from .network import SurpriseMemory, SurpriseState
from .stream_detector import StreamAnomalyDetector

__all__ = ["StreamAnomalyDetector", "SurpriseLikelihood", "SurpriseMemory", "SurpriseModule",
           "SurpriseState", "TitansAnomalyDetector"]
