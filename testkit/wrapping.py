"""A base for doubles wrapping a real Engine or Transcriber: its identity, passed on."""

from __future__ import annotations

from typing import Protocol


class Described(Protocol):
    """What Engine and Transcriber both say about themselves."""

    @property
    def model_id(self) -> str: ...

    @property
    def device(self) -> str: ...

    @property
    def engine(self) -> str: ...

    @property
    def precision(self) -> str: ...


class Wrapping:
    """model_id, device, engine and precision are the wrapped object's; subclasses add the rest."""

    def __init__(self, inner: Described) -> None:
        self._inner = inner

    @property
    def model_id(self) -> str:
        return self._inner.model_id

    @property
    def device(self) -> str:
        return self._inner.device

    @property
    def engine(self) -> str:
        return self._inner.engine

    @property
    def precision(self) -> str:
        return self._inner.precision
