"""Builders of real test artifacts shared by tests/ and bench/: official-format GigaAM checkpoints
with random weights, and Russian speech from espeak-ng. Not part of the installed package."""
