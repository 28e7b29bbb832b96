"""Tests of datamodules.dna."""
