"""Lightning datamodules of titans-seq and the example datasets the package embeds."""

from .datasets import load_etth1, load_etth2, load_nontata_promoters
from .dna import DNADataModule, read_dna
from .timeseries import TimeSeriesDataModule, read_series

__all__ = ["DNADataModule", "TimeSeriesDataModule", "load_etth1", "load_etth2",
           "load_nontata_promoters", "read_dna", "read_series"]
