"""Lightning data modules of titans-seq (time series and DNA).

Empty for now: ``TimeSeriesDataModule`` and ``DNADataModule`` arrive with their issues.
"""

__all__: list[str] = []
