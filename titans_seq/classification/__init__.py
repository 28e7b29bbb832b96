"""Sequence classification: DNA strings and numeric series, through Lightning or scikit-learn."""

from .estimator import TitansClassifier
from .module import ClassificationModule
from .network import TitansClassifierNet
from .reverse import reverse_complement_batch

__all__ = ["ClassificationModule", "TitansClassifier", "TitansClassifierNet",
           "reverse_complement_batch"]
