"""Sequence classification: DNA strings and numeric series, through Lightning or scikit-learn,
with self-supervised pre-training of the encoder on unlabelled DNA."""

from .estimator import TitansClassifier
from .kmers import KmerBag
from .module import ClassificationModule
from .network import TitansClassifierNet
from .pretraining import NextBaseNet, PretrainingModule
from .reverse import reverse_complement_batch
from .trunk import SequenceTrunk

__all__ = ["ClassificationModule", "KmerBag", "NextBaseNet", "PretrainingModule",
           "SequenceTrunk", "TitansClassifier", "TitansClassifierNet",
           "reverse_complement_batch"]
