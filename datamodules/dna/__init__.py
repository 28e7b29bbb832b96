"""DNA input for sequence classification: normalisation, tokenizers, readers, the datamodule.

Typical use::

    from datamodules.dna import DNADataModule
    module = DNADataModule("promoters.fa", labels="labels.csv", tokenizer="char",
                           max_length=1024, rc_augment=0.5)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))  # inputs, mask (True = valid), label

Batches are padded at the END of each row; read the last valid position or pool with the mask.
"""

from .alphabet import DNA_LETTERS, IUPAC_AMBIGUOUS, IUPAC_COMPLEMENT, normalize_sequence, \
    reverse_complement
from .datamodule import (DNACollator, DNADataModule, DNADataset, can_stratify, collate_dna,
                         stratified_split)
from .readers import DNARecords, read_dna, read_genomic_benchmark
from .tokenizers import CharTokenizer, DNATokenizer, KmerTokenizer, OneHotTokenizer, \
    make_tokenizer, pad_batch

__all__ = ["DNA_LETTERS", "IUPAC_AMBIGUOUS", "IUPAC_COMPLEMENT", "CharTokenizer", "DNACollator",
           "DNADataModule",
           "DNADataset", "DNARecords", "DNATokenizer", "KmerTokenizer", "OneHotTokenizer",
           "can_stratify", "collate_dna", "make_tokenizer", "normalize_sequence", "pad_batch", "read_dna",
           "read_genomic_benchmark", "reverse_complement", "stratified_split"]
