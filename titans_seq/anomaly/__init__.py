"""Surprise as a signal: a Titans memory that reads a stream row by row, and the streaming
anomaly detector built on it."""

from .calibration import SurpriseLikelihood
from .detector import TitansAnomalyDetector
from .module import SurpriseModule
from .network import SurpriseMemory, SurpriseState

__all__ = ["SurpriseLikelihood", "SurpriseMemory", "SurpriseModule", "SurpriseState",
           "TitansAnomalyDetector"]
