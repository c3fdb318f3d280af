"""Load any PyTorch or safetensors checkpoint into torch or numpy without running its pickle.

ckpt reads ``.pt``/``.pth``/``.bin`` files written by ``torch.save`` (zip, legacy and tar),
TorchScript archives, safetensors files, sharded checkpoints (a folder or its
``*.index.json``) and ``torch.distributed.checkpoint`` folders. Pickles are interpreted by
ckpt's own reader, never executed: a file whose pickle would run code raises
:class:`DangerousError` instead of running it.

    >>> import ckpt
    >>> tensors = ckpt.load("pytorch_model.bin")             # dict of torch tensors
    >>> with ckpt.safe_open("model.pth", framework="np") as f:
    ...     names = f.keys()                                   # reads no tensor data
    ...     w = f.get_tensor(names[0])

Tensors stored as they are in a file (the usual case) are views of a copy-on-write map of
it, as ``torch.load(mmap=True)`` gives them: nothing is read until used, writing to a
tensor never reaches the file, and a tensor stays valid after its handle is closed.
Tensors that must be produced (byte-swapped, strided in the file, split into chunks,
inflated from a compressed member) are copied once. torch and numpy are imported only when
asked for: ``framework="np"`` works without torch (bfloat16 and float8 then need
``ml_dtypes``).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from ._ckpt import (
    CancelledError,
    DangerousError,
    Error,
    FileError,
    Handle as _Handle,
    InvalidError,
    LimitExceededError,
    MalformedError,
    NotACheckpointError,
    OutputExistsError,
    RefusedError,
    UnsupportedError,
    __version__,
    convert as _convert,
    diff as _diff,
    verify as _verify,
    stats as _stats,
    inspect as _inspect,
    scan as _scan,
    save as _save,
    limit_names as _limit_names,
)

__all__ = [
    "load",
    "load_checkpoint",
    "convert",
    "inspect",
    "scan",
    "diff",
    "verify",
    "stats",
    "save",
    "Object",
    "Global",
    "Backref",
    "safe_open",
    "limits",
    "Error",
    "MalformedError",
    "NotACheckpointError",
    "UnsupportedError",
    "LimitExceededError",
    "RefusedError",
    "DangerousError",
    "InvalidError",
    "FileError",
    "OutputExistsError",
    "CancelledError",
    "__version__",
]

PathLike = Union[str, "os.PathLike[str]"]
_FRAMEWORKS = ("pt", "torch", "np", "numpy")


def limits() -> Dict[str, str]:
    """The limits that ``limits=`` may raise, by name, with what each bounds (as
    ``ckpt limits`` lists them)."""
    return dict(_limit_names())


def _framework(framework: str) -> str:
    if framework not in _FRAMEWORKS:
        raise ValueError(f"framework must be one of {', '.join(map(repr, _FRAMEWORKS))}, not {framework!r}")
    return "pt" if framework in ("pt", "torch") else "np"


# Floating point dtypes numpy holds only through ml_dtypes.
_EXTENDED_FLOATS = ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
                    "float8_e5m2fnuz", "float8_e8m0fnu")


def _numpy_dtype(name: str):
    import numpy as np

    plain = {
        "bool": np.bool_, "uint8": np.uint8, "int8": np.int8, "int16": np.int16,
        "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64,
        "uint64": np.uint64, "float16": np.float16, "float32": np.float32,
        "float64": np.float64, "complex64": np.complex64, "complex128": np.complex128,
    }
    if name in plain:
        return np.dtype(plain[name])
    if name in _EXTENDED_FLOATS:
        try:
            import ml_dtypes
        except ImportError:
            raise UnsupportedError(
                f"numpy has no {name} dtype: install ml_dtypes (pip install ml_dtypes), or "
                f"load with framework='pt'"
            ) from None
        return np.dtype(getattr(ml_dtypes, name))
    raise UnsupportedError(f"numpy has no {name} dtype; load with framework='pt'")


def _torch_dtype(name: str):
    import torch

    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise UnsupportedError(f"this torch ({torch.__version__}) has no {name} dtype")
    return dtype


class _Maps:
    """The storages of one checkpoint's tensors, each made once: a copy-on-write map of
    each file, and a copy of each storage that cannot be mapped (so that tensors sharing
    a storage in the file share memory here too).

    A file is mapped through the descriptor the handle read it from (Python's ``mmap``
    holds a duplicate), so the tensors are views of the bytes ckpt judged, even if the
    path names another file by then; the map outlives the handle."""

    def __init__(self) -> None:
        self._files: Dict[int, Any] = {}
        self._torch: Dict[Any, Any] = {}
        self._numpy: Dict[Any, Any] = {}
        self._itemsize: Dict[Any, int] = {}

    def _map(self, fd: int):
        mapped = self._files.get(fd)
        if mapped is None:
            import mmap

            mapped = mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            self._files[fd] = mapped
        return mapped

    def itemsize(self, dtype) -> int:
        size = self._itemsize.get(dtype)
        if size is None:
            import torch

            size = self._itemsize[dtype] = torch.empty(0, dtype=dtype).element_size()
        return size

    def torch_file(self, fd: int):
        storage = self._torch.get(fd)
        if storage is None:
            import torch

            storage = torch.frombuffer(self._map(fd), dtype=torch.uint8).untyped_storage()
            self._torch[fd] = storage
        return storage

    def torch_copy(self, handle: _Handle, name: str, key):
        storage = self._torch.get(key)
        if storage is None:
            import torch

            data = handle.storage(name)
            storage = torch.frombuffer(data, dtype=torch.uint8).untyped_storage() if len(data) else torch.UntypedStorage(0)
            self._torch[key] = storage
        return storage

    def numpy_file(self, fd: int):
        array = self._numpy.get(fd)
        if array is None:
            import numpy as np

            array = np.frombuffer(self._map(fd), dtype=np.uint8)
            self._numpy[fd] = array
        return array

    def numpy_copy(self, handle: _Handle, name: str, key):
        array = self._numpy.get(key)
        if array is None:
            import numpy as np

            array = np.frombuffer(handle.storage(name), dtype=np.uint8)
            self._numpy[key] = array
        return array


def _tensor(handle: _Handle, maps: _Maps, name: str, framework: str):
    """The tensor `name` of `handle`. A plain view of a storage stays a view, with its
    strides: of a copy-on-write map of the file where the storage lies there as it is
    (and aligned for its dtype), else of one copy of the storage. Anything else (quantized,
    assembled from chunks, sub-byte elements) is produced dense."""
    dtype_name, shape, layout, quantized = handle.plan(name)
    if framework == "pt":
        import torch

        if quantized:
            return _quantized(handle, name, dtype_name, shape, handle.quantization(name))
        if dtype_name == "float4_e2m1fn":
            return _float4(handle, name, shape)
        dtype = _torch_dtype(dtype_name)
        if layout is None:
            return _dense(handle.read(name), dtype_name, shape, framework)
        place, nbytes, offset, strides, key, (conj, neg) = layout
        itemsize = maps.itemsize(dtype)
        if place is not None and place[1] % itemsize == 0:
            storage, start = maps.torch_file(place[0]), place[1] // itemsize
        else:
            storage, start = maps.torch_copy(handle, name, key), 0
        tensor = torch.empty(0, dtype=dtype).set_(storage, start + offset, shape, strides)
        if conj:
            tensor = tensor.conj()
        if neg:
            tensor = torch._neg_view(tensor)
        return tensor
    import numpy as np

    if quantized:
        raise UnsupportedError(
            f"{name} is a quantized {dtype_name} tensor, which numpy has no type for; load "
            f"it with framework='pt'"
        )
    dtype = _numpy_dtype(dtype_name)
    if layout is None:
        return _dense(handle.read(name), dtype_name, shape, framework)
    place, nbytes, offset, strides, key, (conj, neg) = layout
    if place is not None:
        fd, start = place
        raw = maps.numpy_file(fd)[start:start + nbytes]
    else:
        raw = maps.numpy_copy(handle, name, key)
    # numpy checks that the strides stay inside the storage's bytes.
    array = np.ndarray(
        shape=tuple(shape),
        dtype=dtype,
        buffer=raw,
        offset=offset * dtype.itemsize,
        strides=tuple(s * dtype.itemsize for s in strides),
    )
    # numpy has no conjugate or negative views: those are computed.
    if conj:
        array = np.conj(array)
    if neg:
        array = np.negative(array)
    return array


def _dense(data, dtype_name: str, shape, framework: str):
    """A tensor of `shape` over `data`, its elements packed row-major little-endian."""
    if framework == "pt":
        import torch

        dtype = _torch_dtype(dtype_name)
        if not len(data):
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(data, dtype=dtype).reshape(shape)
    import numpy as np

    return np.frombuffer(data, dtype=_numpy_dtype(dtype_name)).reshape(shape)


def _float4(handle: _Handle, name: str, shape):
    """float4_e2m1fn elements, two to a byte, as torch holds them (``float4_e2m1fn_x2``,
    the last dimension halved), as ``safetensors`` gives them."""
    import torch

    packed = getattr(torch, "float4_e2m1fn_x2", None)
    if packed is None or not shape or shape[-1] % 2:
        raise UnsupportedError(
            f"{name}: torch holds float4_e2m1fn only two to a byte (float4_e2m1fn_x2), which "
            f"needs a recent torch and an even last dimension (shape {list(shape)})"
        )
    data = handle.read(name)
    return torch.frombuffer(data, dtype=torch.uint8).view(packed).reshape(*shape[:-1], shape[-1] // 2)


_QUANTIZED_INTEGERS = {"quint8": "uint8", "qint8": "int8", "qint32": "int32"}


def _quantized(handle: _Handle, name: str, dtype_name: str, shape, quantization):
    """A quantized torch tensor, from its integers and its scales and zero points."""
    import torch

    integers = _QUANTIZED_INTEGERS.get(dtype_name)
    if integers is None:
        raise UnsupportedError(f"{name}: quantized {dtype_name} tensors are not supported yet")
    data = handle.read(name)
    values = torch.frombuffer(data, dtype=getattr(torch, integers)) if len(data) else torch.empty(0, dtype=getattr(torch, integers))
    values = values.reshape(shape)
    if quantization[0] == "per_tensor":
        _, scale, zero_point = quantization
        return torch._make_per_tensor_quantized_tensor(values, scale, zero_point)
    _, scales, zero_points, axis, float_qparams = quantization
    if float_qparams:
        scales_t = torch.tensor(scales, dtype=torch.float32)
        zeros_t = torch.tensor(zero_points, dtype=torch.float32)
    else:
        scales_t = torch.tensor(scales, dtype=torch.float64)
        zeros_t = torch.tensor([int(z) for z in zero_points], dtype=torch.int64)
    return torch._make_per_channel_quantized_tensor(values, scales_t, zeros_t, axis)


def _patterns(given: Union[None, str, Iterable[str]]) -> List[str]:
    if given is None:
        return []
    return [given] if isinstance(given, str) else list(given)


def _finish(tensor, framework: str, device: str, dtype):
    """Casts (a dtype object or its name) and moves one tensor, as it is made: a cast or a
    copy to a device holds one tensor at a time beside the map, never a second checkpoint.
    Only floating point tensors are cast, as ``ckpt convert --dtype`` does (integer
    counters, masks and complex tensors keep their dtype)."""
    if framework == "pt":
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(_torch_dtype(dtype) if isinstance(dtype, str) else dtype)
        if device != "cpu":
            tensor = tensor.to(device)
        return tensor
    if device != "cpu":
        raise ValueError(f"numpy arrays live on the CPU: device={device!r} needs framework='pt'")
    floating = tensor.dtype.kind == "f" or tensor.dtype.name in _EXTENDED_FLOATS
    if dtype is not None and floating:
        tensor = tensor.astype(_numpy_dtype(dtype) if isinstance(dtype, str) else dtype)
    return tensor


def load(
    path: PathLike,
    *,
    framework: str = "pt",
    device: str = "cpu",
    key: Optional[str] = None,
    include: Union[None, str, Iterable[str]] = None,
    exclude: Union[None, str, Iterable[str]] = None,
    dtype: Any = None,
    limits: Optional[Dict[str, Union[int, str]]] = None,
) -> Dict[str, Any]:
    """Every tensor of the checkpoint at `path`, by dotted name, as torch tensors
    (``framework="pt"``) or numpy arrays (``framework="np"``).

    `path` is any checkpoint ckpt reads: a ``.pt``/``.pth``/``.bin``/``.ckpt`` file (zip,
    legacy or tar), a TorchScript archive, a ``.safetensors`` file, a sharded checkpoint
    (its folder or index), a ``torch.distributed.checkpoint`` folder. Nothing in it is
    executed.

    - `key`: only the tensors under this dotted key (``"state_dict"``, ``"model"``), named
      without it, as ``ckpt convert --key`` does.
    - `include`, `exclude`: glob patterns (or lists of them) on the names, as
      ``ckpt convert --include/--exclude`` match them (``*`` within a name part).
    - `dtype`: cast every floating point tensor (a ``torch.dtype``, a numpy dtype, or a
      name such as ``"bfloat16"``); other tensors keep theirs, as with ``ckpt convert``.
    - `device`: where torch tensors go (copied tensor by tensor from the map).
    - `limits`: raise a limit for a file that needs more (``{"depth": 1000}``; see
      :func:`limits`).

    Tensors that share storage in the file (tied weights) share memory here too. Raises
    :class:`Error` (a subclass by kind) for a file ckpt cannot read, and
    :class:`DangerousError` for one whose loading would run code.
    """
    framework = _framework(framework)
    handle = _Handle(os.fspath(path), limits, key)
    maps = _Maps()
    return {
        name: _finish(_tensor(handle, maps, name, framework), framework, device, dtype)
        for name in handle.select(_patterns(include), _patterns(exclude))
    }


class Object:
    """An instance of a class ckpt gives no meaning to, as the pickle stores it: its class
    is named, never imported, and nothing of it is called. Its fields are shown as stored,
    not as the class's ``__setstate__`` would rebuild them.

    - `cls`: ``"module.Class"``; `args`, `kwargs`: what its construction was given;
    - `state`: what ``BUILD`` gave it (usually its attribute dict), or None;
    - `items`, `entries`: what was appended or set on it (list and dict subclasses).
    """

    __slots__ = ("cls", "args", "kwargs", "state", "items", "entries")

    def __init__(self, cls: str, args: tuple = (), kwargs: Optional[list] = None, state: Any = None,
                 items: Optional[list] = None, entries: Optional[list] = None) -> None:
        self.cls = cls
        self.args = args
        self.kwargs = dict(kwargs or [])
        self.state = state
        self.items = list(items or [])
        self.entries = list(entries or [])

    def __getattr__(self, name: str) -> Any:
        # The attributes of a dict state, as the instance would have them.
        state = object.__getattribute__(self, "state")
        if isinstance(state, dict) and name in state:
            return state[name]
        raise AttributeError(f"{object.__getattribute__(self, 'cls')} object has no field {name!r}")

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Object) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__
        )

    def __repr__(self) -> str:
        parts = [repr(self.cls)]
        for field in ("args", "kwargs", "state", "items", "entries"):
            value = getattr(self, field)
            if value:
                parts.append(f"{field}={value!r}")
        return f"ckpt.Object({', '.join(parts)})"


class Global:
    """A class or function the pickle names without calling it (`module.name`), never
    imported."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Global) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"ckpt.Global({self.name!r})"


class Backref:
    """A reference back to an object that holds this value (a config node's ``_parent``),
    named by that object's class: shown, not followed."""

    __slots__ = ("cls",)

    def __init__(self, cls: str) -> None:
        self.cls = cls

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Backref) and other.cls == self.cls

    def __repr__(self) -> str:
        return f"ckpt.Backref({self.cls!r})"


class _Factory:
    """Makes what a checkpoint's values need of torch or numpy, for ``Handle.tree``."""

    def __init__(self, handle: _Handle, framework: str, device: str) -> None:
        self._handle = handle
        self._maps = _Maps()
        self._framework = framework
        self._device = device

    def tensor(self, name: str):
        tensor = _tensor(self._handle, self._maps, name, self._framework)
        return _finish(tensor, self._framework, self._device, None)

    def size(self, dims: List[int]):
        if self._framework == "pt":
            import torch

            return torch.Size(dims)
        return tuple(dims)

    def device(self, text: str):
        if self._framework == "pt":
            import torch

            return torch.device(text)
        return text

    def dtype(self, name: str):
        return _torch_dtype(name) if self._framework == "pt" else name

    def named(self, type_name: str, name: str):
        # torch's own constants (torch.strided, torch.channels_last...), looked up by name
        # on the torch module only.
        if self._framework == "pt" and name.startswith("torch.") and name.count(".") == 1:
            import torch

            found = getattr(torch, name.split(".", 1)[1], None)
            if found is not None and type(found).__module__ == "torch" and not callable(found):
                return found
        return name

    def ordered_dict(self, pairs: list):
        return OrderedDict(pairs)

    def object(self, cls: str, args: tuple, kwargs: list, state: Any, items: list, entries: list):
        return Object(cls, args, kwargs, state, items, entries)

    def global_(self, name: str):
        return Global(name)

    def backref(self, cls: str):
        return Backref(cls)


def load_checkpoint(
    path: PathLike,
    *,
    framework: str = "pt",
    device: str = "cpu",
    key: Optional[str] = None,
    limits: Optional[Dict[str, Union[int, str]]] = None,
) -> Any:
    """The whole object saved in `path`, as ``torch.load(weights_only=True)`` returns it
    (dicts, OrderedDicts, lists, tuples, numbers, strings, tensors sharing storages,
    ``torch.Size``, devices, dtypes), read without running anything.

    Also for what that loader refuses and ckpt reads as data: a whole-module pickle or a
    TorchScript archive comes back as its ``state_dict()`` (an OrderedDict of tensors);
    instances of other classes (``argparse.Namespace``, a config object) as inert
    :class:`Object` records, or as their natural reading where ckpt knows the class (a
    ``pathlib`` path as its text, an omegaconf ``DictConfig`` as its dict, a datetime as
    ISO text). A safetensors file or sharded checkpoint gives its dict of tensors.

    `key` selects a subtree (``"state_dict"``); `framework`, `device` and `limits` are as
    for :func:`load`.
    """
    framework = _framework(framework)
    handle = _Handle(os.fspath(path), limits, key)
    factory = _Factory(handle, framework, device)
    if handle.kind() in ("module", "torchscript"):
        return OrderedDict((name, factory.tensor(name)) for name in handle.names())
    return handle.tree(factory)


def inspect(
    path: PathLike,
    *,
    hashes: bool = False,
    limits: Optional[Dict[str, Union[int, str]]] = None,
) -> Dict[str, Any]:
    """What is in the checkpoint at `path`, as a dict: the content ``ckpt inspect --json``
    prints (format, kind, whether ``torch.load(weights_only=True)`` accepts it, a line that
    loads it, tensors with dtype, shape, strides and offsets, plain values, inert objects,
    globals, records, totals). With `hashes`, each tensor's ``sha256`` over its elements
    (row-major, little-endian: equal across formats). Reads only what describes the
    tensors, unless hashing."""
    import json

    return json.loads(_inspect(os.fspath(path), hashes=hashes, limits=limits))


def scan(
    paths: Union[PathLike, Iterable[PathLike]],
    *,
    allow: Union[None, str, Iterable[str]] = None,
    limits: Optional[Dict[str, Union[int, str]]] = None,
) -> Dict[str, Any]:
    """Whether loading each file would run code, as ``ckpt scan --json`` reports it:
    ``{"files": [{"path", "format", "verdict", "findings", "errors", ...}], "summary":
    {...}}``. A verdict is ``safe`` (every byte accounted for, nothing but data),
    ``unsafe`` (imports beyond data), ``dangerous`` (runs processes, code, files or the
    network when loaded) or ``error`` (could not be read: not known to be safe). Folders are
    walked; every pickle a loader would unpickle is judged, without running any.
    `allow` vouches for globals (``module.name`` or a module), which turns ``unsafe`` into
    ``safe`` and never hides a dangerous one."""
    import json

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return json.loads(_scan([os.fspath(p) for p in paths], allow=_patterns(allow), limits=limits))


def diff(
    a: PathLike,
    b: PathLike,
    *,
    key: Optional[str] = None,
    key_a: Optional[str] = None,
    key_b: Optional[str] = None,
    include: Union[None, str, Iterable[str]] = None,
    exclude: Union[None, str, Iterable[str]] = None,
    strip_prefix: Union[None, str, Iterable[str]] = None,
    strip_prefix_a: Union[None, str, Iterable[str]] = None,
    strip_prefix_b: Union[None, str, Iterable[str]] = None,
    rename: Union[None, str, Iterable[str]] = None,
    rename_a: Union[None, str, Iterable[str]] = None,
    rename_b: Union[None, str, Iterable[str]] = None,
    atol: Optional[float] = None,
    rtol: Optional[float] = None,
    ignore_dtype: bool = False,
    limits: Optional[Dict[str, Union[int, str]]] = None,
) -> Dict[str, Any]:
    """Compares the checkpoints at `a` and `b` (any formats: the same weights in a
    ``.pth`` and a ``.safetensors`` compare equal), as ``ckpt diff --json`` reports it:
    ``equal``, ``only_in_a``, ``only_in_b``, ``tensors`` (per name: ``status`` ``equal``,
    ``differ``, ``mismatch`` or ``not-compared``, dtypes, shapes, and for elements that
    differ their count, the first index, the largest absolute and relative difference),
    plain ``values`` (epochs, configs) and a ``summary``.

    Exact (bitwise, NaN equal to NaN) by default; with `atol` or `rtol`, torch's
    ``isclose(a, b, rtol, atol, equal_nan=True)`` with `b` the reference. `key` (or
    `key_a`/`key_b`) compares a subtree; `strip_prefix` and `rename` (both sides, or one
    with ``_a``/``_b``) match names, then `include`/`exclude` select them; `ignore_dtype`
    counts tensors equal in value but not dtype as equal. Reads both files once, on all
    cores, in memory that does not grow with them.
    """
    import json

    return json.loads(_diff(
        os.fspath(a), os.fspath(b), key=key, key_a=key_a, key_b=key_b,
        include=_patterns(include), exclude=_patterns(exclude),
        strip_prefix=_patterns(strip_prefix), strip_prefix_a=_patterns(strip_prefix_a),
        strip_prefix_b=_patterns(strip_prefix_b), rename=_patterns(rename),
        rename_a=_patterns(rename_a), rename_b=_patterns(rename_b), atol=atol, rtol=rtol,
        ignore_dtype=ignore_dtype, limits=limits,
    ))


def verify(
    paths: Union[PathLike, Iterable[PathLike]],
    *,
    manifest: Optional[PathLike] = None,
    key: Optional[str] = None,
    include: Union[None, str, Iterable[str]] = None,
    exclude: Union[None, str, Iterable[str]] = None,
    strip_prefix: Union[None, str, Iterable[str]] = None,
    rename: Union[None, str, Iterable[str]] = None,
    limits: Optional[Dict[str, Union[int, str]]] = None,
) -> Dict[str, Any]:
    """Every structural problem of the checkpoints at `paths` (files and folders; folders
    that are not one checkpoint are walked), as ``ckpt verify --json`` reports it:
    ``{"files": [{"path", "status", "format", "problems", "error", ...}], "manifest",
    "summary"}``. A status is ``sound``, ``problems`` (each with its ``rule``,
    ``severity``, ``message``, place and ``hint``) or ``error`` (it could not be read).

    With `manifest` (written by ``ckpt verify --hash``), each checkpoint's tensors are
    also hashed and checked against it, named as a conversion renamed them (`key`,
    `include`, `exclude`, `strip_prefix`, `rename`, as ``ckpt convert`` applies them).
    """
    import json

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return json.loads(_verify(
        [os.fspath(p) for p in paths],
        manifest=None if manifest is None else os.fspath(manifest), key=key,
        include=_patterns(include), exclude=_patterns(exclude),
        strip_prefix=_patterns(strip_prefix), rename=_patterns(rename), limits=limits,
    ))


def stats(
    path: PathLike,
    *,
    include: Union[None, str, Iterable[str]] = None,
    exclude: Union[None, str, Iterable[str]] = None,
    histogram: bool = False,
    bins: Optional[int] = None,
    flag_zero: str = "float",
    limits: Optional[Dict[str, Union[int, str]]] = None,
) -> Dict[str, Any]:
    """Statistics of every tensor of the checkpoint at `path`, as ``ckpt stats --json``
    reports them: per tensor ``min``, ``max``, ``mean``, ``std`` (of the finite values;
    ``"inf"``/``"-inf"``/``"nan"`` as strings, ``None`` where there are none), counts of
    NaN, infinities and zeros, and ``flags`` (``nan``, ``inf``, ``all-zero``: a broken
    training run; ``constant`` noted); a ``summary`` with ``flagged`` tensors.

    `include`/`exclude` select tensors by glob; `histogram` (16 bins) or `bins` adds each
    tensor's histogram (``edges``, ``counts``); `flag_zero` is which all-zero tensors are
    flagged: ``"float"`` (floating, complex, quantized), ``"any"`` or ``"none"``. Reads
    every tensor once, on all cores.
    """
    import json

    if histogram and bins is None:
        bins = 16
    return json.loads(_stats(
        os.fspath(path), include=_patterns(include), exclude=_patterns(exclude), bins=bins,
        flag_zero=flag_zero, limits=limits,
    ))


def convert(
    input: PathLike,
    output: PathLike,
    *,
    to: Optional[str] = None,
    key: Optional[str] = None,
    include: Union[None, str, Iterable[str]] = None,
    exclude: Union[None, str, Iterable[str]] = None,
    strip_prefix: Union[None, str, Iterable[str]] = None,
    rename: Union[None, str, Iterable[str]] = None,
    dedupe: bool = False,
    max_shard_size: Union[None, int, str] = None,
    dtype: Optional[str] = None,
    overwrite: bool = False,
    sync: bool = True,
    limits: Optional[Dict[str, Union[int, str]]] = None,
) -> Dict[str, Any]:
    """Converts the checkpoint at `input` into `output`, as ``ckpt convert`` does: a
    safetensors file byte-identical to ``safetensors.torch.save_file`` of the same tensors,
    or a ``.pth`` that ``torch.load(weights_only=True)`` reads; with `max_shard_size`
    (``"2GB"``), a folder of shards and their index. The output appears whole or not at
    all (written to a temporary file, then renamed); the input is never modified.

    `to` (``"safetensors"`` or ``"pth"``) overrides the format the output's name gives;
    `key`, `include`, `exclude`, `strip_prefix`, `rename` (``"PATTERN=REPLACEMENT"``, a
    regex with ``$1``), `dedupe`, `dtype` and `limits` are ``ckpt convert``'s options.
    Returns what was written: ``tensors``, ``parameters``, ``bytes``, ``files`` (path and
    size), and the names skipped, deduplicated, renamed or excluded.
    """
    return _convert(
        os.fspath(input), os.fspath(output), to=to, key=key, include=_patterns(include),
        exclude=_patterns(exclude), strip_prefix=_patterns(strip_prefix),
        rename=_patterns(rename), dedupe=dedupe, max_shard_size=max_shard_size, dtype=dtype,
        overwrite=overwrite, sync=sync, limits=limits,
    )


def _entry(name: str, tensor):
    """What the writer needs of one tensor: its dtype's name, shape, strides and offset in
    its storage, and the object owning that storage (read where it is, not copied)."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and isinstance(tensor, torch.Tensor):
        tensor = tensor.detach()
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        if tensor.is_quantized or tensor.is_sparse or tensor.layout != torch.strided:
            raise UnsupportedError(f"{name}: only dense tensors can be saved")
        dtype = str(tensor.dtype).split(".", 1)[1]
        # A conjugate or negative view keeps its storage (and its bit, in a .pth).
        return (name, dtype, list(tensor.shape), list(tensor.stride()),
                tensor.storage_offset(), tensor.untyped_storage(),
                (tensor.is_conj(), tensor.is_neg()))
    import numpy as np

    array = np.ascontiguousarray(tensor)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    dtype = array.dtype.name
    strides = [s // array.itemsize for s in array.strides] if array.itemsize else []
    return (name, dtype, list(array.shape), strides, 0, array, (False, False))


def save(
    tensors: Dict[str, Any],
    path: PathLike,
    *,
    metadata: Optional[Dict[str, str]] = None,
    format: Optional[str] = None,
    max_shard_size: Union[None, int, str] = None,
    sync: bool = True,
) -> Dict[str, Any]:
    """Writes a dict of tensors (torch tensors or numpy arrays) to `path`.

    - ``.safetensors`` (or ``format="safetensors"``): the bytes
      ``safetensors.torch.save_file`` writes for the same tensors and `metadata`; tensors
      sharing memory are each written whole.
    - ``.pt``/``.pth``/``.bin`` (or ``format="pth"``): a ``torch.save`` zip that
      ``torch.load(weights_only=True)`` reads; tensors sharing a storage keep sharing it.
    - `max_shard_size` (``"2GB"``): a folder of shards and the index transformers loads.

    Tensors are read where they are (CPU tensors are not copied; others are moved to the
    CPU one at a time), and must not be modified while saving. The output appears whole
    or not at all, replacing an existing file, as ``save_file`` and ``torch.save`` do;
    with `sync` (the default) it has reached the disk (``fsync``) before it appears, which
    ``save_file`` and ``torch.save`` do not wait for (``sync=False`` is as fast). Returns ``tensors``, ``bytes`` and ``files`` (path and size).
    """
    if not isinstance(tensors, dict):
        raise TypeError(f"tensors must be a dict of names to tensors, not {type(tensors).__name__}")
    entries = [_entry(name, tensor) for name, tensor in tensors.items()]
    return _save(entries, os.fspath(path), target=format, metadata=metadata,
                 max_shard_size=max_shard_size, sync=sync)


def _rows(index, size: int):
    """For an index whose first part selects rows (an int, or a slice with a positive
    step), the rows to read (start, count) and the index to apply to them; else None."""
    first, more = (index[0], index[1:]) if isinstance(index, tuple) and index else (index, ())
    if isinstance(first, bool):
        return None
    if isinstance(first, int):
        at = first + size if first < 0 else first
        return (at, 1, (0,) + tuple(more)) if 0 <= at < size else None
    if isinstance(first, slice):
        start, stop, step = first.indices(size)
        if step < 1 or stop <= start:
            return None
        return start, stop - start, (slice(None, None, step),) + tuple(more)
    return None


class _Slice:
    """One tensor of a :func:`safe_open` handle, read only when indexed: a tensor mapped
    from the file is a view, of which only the pages indexed are read; one that must be
    produced (byte-swapped, inflated, assembled from chunks) is produced for the rows the
    index's first part selects only."""

    def __init__(self, opened: "safe_open", name: str) -> None:
        self._opened = opened
        self._name = name

    def get_shape(self) -> List[int]:
        return list(self._opened._handle.info(self._name)[1])

    def get_dtype(self) -> str:
        return self._opened._handle.info(self._name)[0]

    def __getitem__(self, index):
        opened, name = self._opened, self._name
        dtype_name, shape, layout, quantized = opened._handle.plan(name)
        mapped = layout is not None and layout[0] is not None
        plain = not (mapped or quantized or dtype_name == "float4_e2m1fn") and len(shape) > 0
        rows = _rows(index, shape[0]) if plain else None
        if rows is None:
            return opened.get_tensor(name)[index]
        start, count, rest = rows
        data = opened._handle.read_rows(name, start, count)
        part = _dense(data, dtype_name, [count, *shape[1:]], opened._framework)
        return _finish(part, opened._framework, opened._device, None)[rest]


class safe_open:
    """A lazy handle on any checkpoint, like ``safetensors.safe_open`` (which reads
    safetensors only): names, metadata, dtypes and shapes without reading tensor data, and
    each tensor when asked for.

        with ckpt.safe_open("pytorch_model.bin", framework="pt") as f:
            for name in f.keys():
                tensor = f.get_tensor(name)
    """

    def __init__(
        self,
        path: PathLike,
        framework: str = "pt",
        device: str = "cpu",
        *,
        key: Optional[str] = None,
        limits: Optional[Dict[str, Union[int, str]]] = None,
    ) -> None:
        self._framework = _framework(framework)
        self._device = device
        self._handle = _Handle(os.fspath(path), limits, key)
        self._maps = _Maps()

    def __enter__(self) -> "safe_open":
        return self

    def __exit__(self, *exc_info) -> None:
        # Tensors handed out keep their maps; the handle itself holds nothing to close
        # beyond what garbage collection releases.
        self._maps = _Maps()

    def keys(self) -> List[str]:
        """The tensors' names, in the checkpoint's order."""
        return self._handle.names()

    def metadata(self) -> Dict[str, str]:
        """The checkpoint's text metadata (a safetensors ``__metadata__``, a torch
        archive's records)."""
        return self._handle.metadata()

    def format(self) -> str:
        """The container's format: ``safetensors``, ``torch-zip``, ``torch-legacy``..."""
        return self._handle.format()

    def dtype(self, name: str) -> str:
        """The dtype of `name` (torch's name for it), without reading its data."""
        return self._handle.info(name)[0]

    def shape(self, name: str) -> Tuple[int, ...]:
        """The shape of `name`, without reading its data."""
        return tuple(self._handle.info(name)[1])

    def get_tensor(self, name: str):
        """The tensor `name`."""
        tensor = _tensor(self._handle, self._maps, name, self._framework)
        return _finish(tensor, self._framework, self._device, None)

    def get_slice(self, name: str) -> _Slice:
        """The tensor `name`, to index (``f.get_slice(name)[0:2]``) or to ask its shape
        and dtype (``get_shape()``, ``get_dtype()``)."""
        self._handle.info(name)
        return _Slice(self, name)
