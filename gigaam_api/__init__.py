"""gigaam-api: a self-hosted, OpenAI-compatible speech-to-text server for Russian on GigaAM."""

__version__ = "0.1.0"
