"""Reads an official GigaAM `.ckpt` (a torch zip archive) into a ModelConfig and a network.

The pickle inside is read by a restricted unpickler: only tensor rebuilding, plain containers and
OmegaConf's node classes (mapped to inert stand-ins) are allowed, so no pickled code ever runs.
The caller supplies the network class; every tensor's name and shape is checked against that
network, built on the meta device, before any tensor bytes are read. Knows nothing of downloads,
tokenizers or which modules the network is made of.
"""

from __future__ import annotations

import collections
import io
import logging
import pickle
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from torch import nn

from gigaam_api.errors import CheckpointError, GigaamError, UnsafeCheckpointError
from gigaam_api.model.config import ModelConfig, parse_model_config

logger = logging.getLogger(__name__)

_MODEL_PREFIXES = ("preprocessor.", "encoder.", "head.")
_READ_CHUNK_BYTES = 16 << 20


NetworkT = TypeVar("NetworkT", bound=nn.Module)


@dataclass(frozen=True)
class Checkpoint(Generic[NetworkT]):
    """A loaded checkpoint: its architecture and the network holding its tensors.

    The network is on the CPU with the file's tensors as its parameters and buffers (floating
    ones as float32), in whatever mode `build` left it.
    """

    config: ModelConfig
    network: NetworkT


# ------------------------------------------------------------------- restricted unpickling


@dataclass(frozen=True)
class _StorageType:
    dtype: torch.dtype


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: torch.dtype
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    """A tensor described by the pickle; its bytes are read only after the layout is checked."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: object, offset: object, size: object, stride: object, *_unused: object
) -> _TensorRef:
    if not isinstance(storage, _StorageRef) or not isinstance(offset, int):
        raise CheckpointError("malformed tensor record in the checkpoint pickle")
    return _TensorRef(storage, offset, _int_tuple(size), _int_tuple(stride))


def _rebuild_parameter(data: object, *_unused: object) -> object:
    return data


def _int_tuple(value: object) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(isinstance(v, int) for v in value):
        raise CheckpointError(f"malformed tensor size/stride {value!r} in the checkpoint pickle")
    return tuple(value)


class _OmegaNode:
    """Stand-in for an OmegaConf class: keeps the pickled state, runs nothing."""

    def __init__(self, *_args: object) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: object) -> None:
        self.state = state if isinstance(state, dict) else {}

    def get(self, key: str) -> Any:
        # Unpickling creates the object without __init__; a node never BUILT has no state.
        return getattr(self, "state", {}).get(key)


class _OmegaDict(_OmegaNode):
    pass


class _OmegaList(_OmegaNode):
    pass


class _OmegaValue(_OmegaNode):
    pass


class _OmegaMetadata(_OmegaNode):
    pass


class _AttributeDict(dict[Any, Any]):
    """Lightning's AttributeDict (a dict subclass holding hyper_parameters)."""


class _TypingAny:
    """Marker for `typing.Any`, which OmegaConf metadata references as a type."""


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}

_OMEGACONF_CLASSES: dict[tuple[str, str], type[_OmegaNode]] = {
    ("omegaconf.dictconfig", "DictConfig"): _OmegaDict,
    ("omegaconf.listconfig", "ListConfig"): _OmegaList,
    ("omegaconf.base", "ContainerMetadata"): _OmegaMetadata,
    ("omegaconf.base", "Metadata"): _OmegaMetadata,
    **{
        ("omegaconf.nodes", name): _OmegaValue
        for name in (
            "AnyNode",
            "ValueNode",
            "StringNode",
            "IntegerNode",
            "FloatNode",
            "BooleanNode",
            "BytesNode",
            "PathNode",
            "InterpolationResultNode",
        )
    },
    ("omegaconf.base", "UnionNode"): _OmegaValue,
}

_BUILTINS: dict[str, object] = {
    "dict": dict,
    "list": list,
    "tuple": tuple,
    "set": set,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "long": int,  # how protocol 2 spells int (OmegaConf metadata's key_type)
}

_ALLOWED: dict[tuple[str, str], object] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    ("typing", "Any"): _TypingAny,
    ("lightning.fabric.utilities.data", "AttributeDict"): _AttributeDict,
    ("pytorch_lightning.utilities.parsing", "AttributeDict"): _AttributeDict,
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()},
    **_OMEGACONF_CLASSES,
    # Protocol-2 pickles name the builtins module `__builtin__`.
    **{("builtins", name): value for name, value in _BUILTINS.items()},
    **{("__builtin__", name): value for name, value in _BUILTINS.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"The checkpoint's pickle references {module}.{name}, which is not allowed in a "
                "GigaAM checkpoint; refusing to load it (nothing was executed)."
            ) from None

    def persistent_load(self, pid: Any) -> _StorageRef:
        if (
            isinstance(pid, tuple)
            and len(pid) == 5
            and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)
            and isinstance(pid[2], str)
            and isinstance(pid[4], int)
        ):
            return _StorageRef(key=pid[2], dtype=pid[1].dtype, numel=pid[4])
        raise CheckpointError(f"unsupported persistent record {pid!r} in the checkpoint pickle")


def _unpickle(data: bytes) -> Any:
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except GigaamError:
        raise
    except Exception as exc:  # any malformed pickle surfaces as one typed error
        raise CheckpointError(f"the checkpoint's pickle is corrupt: {exc}") from exc


# ------------------------------------------------------------------------ cfg to plain data

_INTERPOLATION = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_.]*)\}$")


def _plain(value: Any) -> Any:
    """OmegaConf stand-ins and containers to plain dicts/lists/scalars."""
    if isinstance(value, _OmegaDict | _OmegaList):
        content = value.get("_content")
        return content if content is None or isinstance(content, str) else _plain(content)
    if isinstance(value, _OmegaValue):
        return _plain(value.get("_val"))
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _resolve_interpolations(node: Any, root: Mapping[str, Any], depth: int = 0) -> Any:
    """Replace `${a.b.c}` strings (absolute OmegaConf references) by the value they point to."""
    if isinstance(node, dict):
        return {key: _resolve_interpolations(item, root, depth) for key, item in node.items()}
    if isinstance(node, list):
        return [_resolve_interpolations(item, root, depth) for item in node]
    if isinstance(node, str) and (match := _INTERPOLATION.match(node)) and depth < 8:
        target: Any = root
        for part in match.group(1).split("."):
            if not isinstance(target, Mapping) or part not in target:
                return node
            target = target[part]
        return _resolve_interpolations(target, root, depth + 1)
    return node


# ------------------------------------------------------------------------------- archive


def _data_prefix(archive: zipfile.ZipFile) -> str:
    pickles = [name for name in archive.namelist() if re.fullmatch(r"[^/]+/data\.pkl", name)]
    if len(pickles) != 1:
        raise CheckpointError(f"expected one */data.pkl in the archive, found {len(pickles)}")
    return pickles[0][: -len("data.pkl")]


def _check_byteorder(archive: zipfile.ZipFile, prefix: str) -> None:
    try:
        byteorder = archive.read(prefix + "byteorder").decode().strip()
    except KeyError:
        return  # older torch versions always wrote little-endian without saying so
    if byteorder != "little":
        raise CheckpointError(f"big-endian ({byteorder}) checkpoints are not supported")


def _split(top: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(cfg, state_dict) from the official layout or a Lightning checkpoint with model_cfg."""
    if not isinstance(top, Mapping) or not isinstance(top.get("state_dict"), Mapping):
        raise CheckpointError("the checkpoint holds no `state_dict` mapping")
    state = dict(top["state_dict"])
    cfg = top.get("cfg")
    if cfg is None and isinstance(top.get("hyper_parameters"), Mapping):
        hyper = top["hyper_parameters"]
        cfg = hyper.get("model_cfg") or hyper.get("cfg")
        # Lightning keeps other module state beside the model's three parts.
        state = {key: value for key, value in state.items() if key.startswith(_MODEL_PREFIXES)}
    cfg = _plain(cfg)
    if not isinstance(cfg, dict):
        raise CheckpointError(
            "the checkpoint holds no `cfg` (a GigaAM checkpoint stores its architecture there)"
        )
    if state and all(key.startswith("model.") for key in state):  # Hugging Face naming
        state = {key[len("model.") :]: value for key, value in state.items()}
    return _resolve_interpolations(cfg, cfg), state


def _tensor_refs(state: Mapping[str, Any]) -> dict[str, _TensorRef]:
    bad = [str(key) for key, value in state.items() if not isinstance(value, _TensorRef)]
    if bad:
        raise CheckpointError(f"state_dict entries that are not tensors: {', '.join(bad[:8])}")
    return {str(key): value for key, value in state.items()}


def _read_storage(archive: zipfile.ZipFile, prefix: str, storage: _StorageRef) -> torch.Tensor:
    itemsize = torch.empty((), dtype=storage.dtype).element_size()
    name = f"{prefix}data/{storage.key}"
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise CheckpointError(f"the archive lacks tensor data {name}") from None
    nbytes = storage.numel * itemsize
    if info.file_size < nbytes:
        raise CheckpointError(f"tensor data {name} is {info.file_size} bytes, need {nbytes}")
    if nbytes == 0:
        return torch.empty(0, dtype=storage.dtype)
    buffer = bytearray(nbytes)  # writable, so torch can share it without a copy
    with archive.open(info) as stream:
        filled = 0
        while filled < nbytes:
            chunk = stream.read(min(nbytes - filled, _READ_CHUNK_BYTES))
            if not chunk:
                raise CheckpointError(f"tensor data {name} ends early")
            buffer[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
    raw = torch.frombuffer(buffer, dtype=torch.uint8)
    return raw.view(storage.dtype)


def _materialize(
    archive: zipfile.ZipFile, prefix: str, refs: Mapping[str, _TensorRef]
) -> dict[str, torch.Tensor]:
    """Read each storage once, cut its tensors out as fp32 copies, then let the bytes go."""
    by_storage: dict[str, list[str]] = {}
    for name, ref in refs.items():
        by_storage.setdefault(ref.storage.key, []).append(name)
    tensors: dict[str, torch.Tensor] = {}
    for names in by_storage.values():
        storage = _read_storage(archive, prefix, refs[names[0]].storage)
        for name in names:
            ref = refs[name]
            try:
                tensor = storage.as_strided(ref.size, ref.stride, ref.offset)
            except RuntimeError as exc:
                raise CheckpointError(f"tensor {name} lies outside its storage: {exc}") from exc
            if tensor.is_floating_point() and tensor.dtype != torch.float32:
                tensor = tensor.float()
            tensors[name] = tensor.contiguous()
        del storage
    return {name: tensors[name] for name in refs}


def _check_shapes(
    config: ModelConfig,
    expected: Mapping[str, tuple[int, ...]],
    stored: Mapping[str, tuple[int, ...]],
) -> None:
    """Raise CheckpointError listing every missing, unexpected or mis-shaped tensor."""
    missing = [key for key in expected if key not in stored]
    unexpected = [key for key in stored if key not in expected]
    wrong = [
        f"{key} {stored[key]} (expected {shape})"
        for key, shape in expected.items()
        if key in stored and stored[key] != shape
    ]
    problems = [
        f"{len(keys)} {label}: {_preview(keys)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", wrong))
        if keys
    ]
    if problems:
        raise CheckpointError(
            f"Checkpoint {config.name!r} does not match its {config.kind} architecture: "
            + "; ".join(problems)
        )


def _preview(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", … ({len(items) - limit} more)" if len(items) > limit else "")


def tensor_shapes(network: nn.Module) -> dict[str, tuple[int, ...]]:
    """Every tensor a checkpoint for `network` must hold (its state_dict), with its shape."""
    return {name: tuple(tensor.shape) for name, tensor in network.state_dict().items()}


def load_checkpoint(path: Path, build: Callable[[ModelConfig], NetworkT]) -> Checkpoint[NetworkT]:
    """Load `path` into the network `build` makes for its architecture, running no pickled code.

    The network is built on the meta device (no memory, no initialisation); the file's tensor
    names and shapes must match its state_dict exactly before any tensor bytes are read; then the
    file's tensors become its parameters and buffers (assign=True: one copy of the weights).

    Raises:
        UnsafeCheckpointError: the pickle references something outside the allowlist.
        CheckpointError: anything else unexpected: an unreadable or corrupt file, an unknown
            layout, or tensors missing, unexpected or mis-shaped for the architecture.
    """
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise CheckpointError(f"Checkpoint file {path} does not exist") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint (truncated or corrupt?): {exc}"
        ) from exc
    try:
        with archive:
            prefix = _data_prefix(archive)
            _check_byteorder(archive, prefix)
            top = _unpickle(archive.read(prefix + "data.pkl"))
            cfg, state = _split(top)
            refs = _tensor_refs(state)
            name = cfg.get("model_name")
            stored_shapes = {key: ref.size for key, ref in refs.items()}
            config = parse_model_config(
                cfg, stored_shapes, name=name if isinstance(name, str) and name else path.stem
            )
            with torch.device("meta"):
                network = build(config)
            _check_shapes(config, tensor_shapes(network), stored_shapes)
            state_dict = _materialize(archive, prefix, refs)
            try:
                network.load_state_dict(state_dict, strict=True, assign=True)
            except RuntimeError as exc:  # a dtype the network's tensor cannot take
                raise CheckpointError(f"weights do not fit the model: {exc}") from exc
    except UnsafeCheckpointError as exc:
        raise UnsafeCheckpointError(f"{path}: {exc}") from None
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path} is unreadable (truncated or corrupt?): {exc}") from exc
    logger.info(
        "Loaded checkpoint %s: %s %s, %d tensors",
        path,
        config.name,
        config.kind,
        len(state_dict),
    )
    return Checkpoint(config=config, network=network)
