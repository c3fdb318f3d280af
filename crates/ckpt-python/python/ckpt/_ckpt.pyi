"""Type stubs of the native half of the ckpt package (crates/ckpt-python/src)."""

from os import PathLike
from typing import Any, Dict, List, Optional, Tuple, Union

__version__: str

class Error(Exception):
    kind: str
    message: str
    hint: Optional[str]
    path: Optional[str]
    member: Optional[str]
    tensor: Optional[str]
    offset: Optional[int]

class MalformedError(Error): ...
class NotACheckpointError(Error): ...
class UnsupportedError(Error): ...
class LimitExceededError(Error): ...
class RefusedError(Error): ...
class DangerousError(Error): ...
class InvalidError(Error): ...
class FileError(Error): ...
class OutputExistsError(Error): ...
class CancelledError(Error): ...

# (file descriptor, offset) or None, storage bytes, offset, strides, storage key, (conj, neg)
Layout = Tuple[
    Optional[Tuple[int, int]], int, int, List[int], Tuple[int, int], Tuple[bool, bool]
]
# dtype name, shape, layout when a view of its storage, quantized
Plan = Tuple[str, List[int], Optional[Layout], bool]

class Handle:
    def __init__(
        self,
        path: Union[str, PathLike[str]],
        limits: Optional[Dict[str, Union[int, str]]] = None,
        key: Optional[str] = None,
    ) -> None: ...
    def names(self) -> List[str]: ...
    def select(self, include: List[str], exclude: List[str]) -> List[str]: ...
    def metadata(self) -> Dict[str, str]: ...
    def format(self) -> str: ...
    def kind(self) -> str: ...
    def notes(self) -> List[str]: ...
    def files(self) -> List[str]: ...
    def tree(self, factory: Any) -> Any: ...
    def info(self, name: str) -> Tuple[str, List[int]]: ...
    def plan(self, name: str) -> Plan: ...
    def storage(self, name: str) -> bytearray: ...
    def quantization(self, name: str) -> Optional[tuple]: ...
    def read(self, name: str) -> bytearray: ...
    def read_rows(self, name: str, start: int, len: int) -> bytearray: ...

def limit_names() -> List[Tuple[str, str]]: ...
def convert(
    input: str,
    output: str,
    *,
    to: Optional[str] = None,
    key: Optional[str] = None,
    include: List[str] = ...,
    exclude: List[str] = ...,
    strip_prefix: List[str] = ...,
    rename: List[str] = ...,
    dedupe: bool = False,
    max_shard_size: Union[None, int, str] = None,
    dtype: Optional[str] = None,
    overwrite: bool = False,
    sync: bool = True,
    limits: Optional[Dict[str, Union[int, str]]] = None,
) -> Dict[str, Any]: ...
def save(
    tensors: List[tuple],
    path: str,
    *,
    target: Optional[str] = None,
    metadata: Optional[Dict[str, str]] = None,
    max_shard_size: Union[None, int, str] = None,
    sync: bool = True,
) -> Dict[str, Any]: ...
def inspect(
    path: str, *, hashes: bool = False, limits: Optional[Dict[str, Union[int, str]]] = None
) -> str: ...
def scan(
    paths: List[str], *, allow: List[str] = ..., limits: Optional[Dict[str, Union[int, str]]] = None
) -> str: ...
def diff(
    a: str,
    b: str,
    *,
    key: Optional[str] = None,
    key_a: Optional[str] = None,
    key_b: Optional[str] = None,
    include: List[str] = ...,
    exclude: List[str] = ...,
    strip_prefix: List[str] = ...,
    strip_prefix_a: List[str] = ...,
    strip_prefix_b: List[str] = ...,
    rename: List[str] = ...,
    rename_a: List[str] = ...,
    rename_b: List[str] = ...,
    atol: Optional[float] = None,
    rtol: Optional[float] = None,
    ignore_dtype: bool = False,
    limits: Optional[Dict[str, Union[int, str]]] = None,
) -> str: ...
def verify(
    paths: List[str],
    *,
    manifest: Optional[str] = None,
    key: Optional[str] = None,
    include: List[str] = ...,
    exclude: List[str] = ...,
    strip_prefix: List[str] = ...,
    rename: List[str] = ...,
    limits: Optional[Dict[str, Union[int, str]]] = None,
) -> str: ...
def stats(
    path: str,
    *,
    include: List[str] = ...,
    exclude: List[str] = ...,
    bins: Optional[int] = None,
    flag_zero: str = "float",
    limits: Optional[Dict[str, Union[int, str]]] = None,
) -> str: ...
