"""Binary payloads without pickle: numeric frames and policy weights.

A frame is a batch of arrays behind a typed JSON header, so a consumer knows what it got
and the layout of every array before touching the bytes:

    b"RNT1" | u32 big-endian n | n bytes of JSON | array 0 | array 1 | ...

The JSON is `{"header": <a frame header record>, "arrays": [{"name", "dtype", "shape"}]}`;
arrays follow as raw little-endian C-order bytes. Decoding checks everything, so a malformed
frame is a `BadMessage` (dead-lettered). State dicts travel as safetensors, which cannot run
code on load. See docs/architecture.md and docs/security.md.
"""

from __future__ import annotations

import functools
import json
import math
import struct
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from schemas.messages import FRAME_HEADERS, BadMessage, Message, decode_message

if TYPE_CHECKING:
    import torch

MAGIC = b"RNT1"
MAX_FRAME_BYTES = 64 * 1024 * 1024
DTYPES = frozenset({"float32", "float64", "int64", "int32", "uint8", "bool"})

_LENGTH = struct.Struct(">I")
_PREFIX = len(MAGIC) + _LENGTH.size
_NATIVE_IS_LITTLE = sys.byteorder == "little"  # native arrays go on the wire as they are


def encode_frame(header: Message, arrays: Mapping[str, np.ndarray]) -> bytes:
    """One frame: `header` (a frame header record) and the named arrays, in order."""
    if not isinstance(header, FRAME_HEADERS):
        raise TypeError(f"{type(header).__name__} is not a frame header")
    layout, blobs = [], []
    for name, value in arrays.items():
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
        dtype = array.dtype
        dtype_name = _DTYPE_NAMES.get(dtype) or dtype.name
        if dtype_name not in DTYPES:
            raise TypeError(f"array {name!r}: dtype {dtype} is not one of {sorted(DTYPES)}")
        if not (_NATIVE_IS_LITTLE and dtype.isnative and array.flags.c_contiguous):
            array = np.ascontiguousarray(array, dtype=dtype.newbyteorder("<"))
        layout.append((name, dtype_name, array.shape))
        blobs.append(array)  # the join reads the array's buffer: one copy, not two
    # The header record's own JSON (pydantic's serializer, as `Message.encode`), spliced
    # into the frame's with the arrays' layout, whose JSON repeats from frame to frame.
    head = b"".join(
        [b'{"header":', header.encode(), b',"arrays":', _layout_json(tuple(layout)), b"}"]
    )
    return b"".join([MAGIC, _LENGTH.pack(len(head)), head, *blobs])


# dtype.name is computed in Python on every access, and a frame reads a dozen
_DTYPE_NAMES = {np.dtype(name): name for name in DTYPES}


@functools.lru_cache(maxsize=256)
def _layout_json(layout: tuple[tuple[str, str, tuple[int, ...]], ...]) -> bytes:
    """The frame's "arrays" list as JSON; a worker's frames all have one or two layouts."""
    specs = [{"name": name, "dtype": dtype, "shape": list(shape)} for name, dtype, shape in layout]
    return json.dumps(specs, separators=(",", ":"), allow_nan=False).encode()


def decode_frame(
    body: bytes, max_bytes: int = MAX_FRAME_BYTES
) -> tuple[Message, dict[str, np.ndarray]]:
    """The header record and the arrays of a frame; BadMessage says what is wrong.

    Only a few plain dtypes are allowed, and everything is checked (magic, lengths that add
    up exactly, dtypes, shapes, the header record), so a malformed or hostile frame never
    becomes an exception deep in the training code. The arrays are read-only views into
    `body`: no copy on the hot path (a sample batch goes straight into torch.as_tensor or an
    index); call `.copy()` to write to one.
    """
    view = memoryview(body).cast("B")
    if len(view) > max_bytes:
        raise BadMessage(f"frame of {len(view)} bytes exceeds the limit of {max_bytes}")
    if len(view) < _PREFIX or view[: len(MAGIC)] != MAGIC:
        raise BadMessage("not a runt frame (bad magic)")
    (head_length,) = _LENGTH.unpack_from(view, len(MAGIC))
    offset = _PREFIX + head_length
    if offset > len(view):
        raise BadMessage(f"frame header of {head_length} bytes runs past the end of the frame")
    header, layout = _read_meta(view[_PREFIX:offset])
    arrays: dict[str, np.ndarray] = {}
    for name, dtype, shape in layout:
        count = math.prod(shape)
        end = offset + count * dtype.itemsize
        if end > len(view):
            raise BadMessage(f"array {name!r} runs past the end of the frame")
        try:
            array = np.frombuffer(view, dtype=dtype, count=count, offset=offset).reshape(shape)
        except ValueError as exc:  # e.g. an empty array with an absurd dimension
            raise BadMessage(f"array {name!r}: shape {list(shape)}: {exc}") from None
        if dtype == np.bool_ and count and np.frombuffer(view, np.uint8, count, offset).max() > 1:
            raise BadMessage(f"array {name!r}: bool values must be 0 or 1")
        array.flags.writeable = False
        arrays[name] = array
        offset = end
    if offset != len(view):
        raise BadMessage(f"{len(view) - offset} bytes left over after the last array")
    return header, arrays


def _read_meta(raw: memoryview) -> tuple[Message, list[tuple[str, np.dtype, tuple[int, ...]]]]:
    """Parse and check the JSON part: the header record and the array layout."""
    try:
        meta = json.loads(bytes(raw))
    except ValueError:  # also UnicodeDecodeError
        raise BadMessage("frame header is not valid JSON") from None
    if not isinstance(meta, dict) or set(meta) != {"header", "arrays"}:
        raise BadMessage("frame header must be an object with exactly 'header' and 'arrays'")
    if not isinstance(meta["header"], dict):
        raise BadMessage("frame header: 'header' must be an object")
    header = decode_message(meta["header"])
    if not isinstance(header, FRAME_HEADERS):
        raise BadMessage(f"frame header: {header.type!r} is not a frame header")
    if not isinstance(meta["arrays"], list):
        raise BadMessage("frame header: 'arrays' must be a list")
    layout, seen = [], set()
    for spec in meta["arrays"]:
        name, dtype, shape = _array_spec(spec)
        if name in seen:
            raise BadMessage(f"array {name!r} appears twice")
        seen.add(name)
        layout.append((name, dtype, shape))
    return header, layout


def _array_spec(spec: Any) -> tuple[str, np.dtype, tuple[int, ...]]:
    if not isinstance(spec, dict) or set(spec) != {"name", "dtype", "shape"}:
        raise BadMessage("each array needs exactly 'name', 'dtype' and 'shape'")
    name, dtype, shape = spec["name"], spec["dtype"], spec["shape"]
    if not isinstance(name, str) or not name:
        raise BadMessage("array name must be a non-empty string")
    if dtype not in DTYPES:
        raise BadMessage(f"array {name!r}: dtype {dtype!r} is not one of {sorted(DTYPES)}")
    if not isinstance(shape, list) or not all(
        type(n) is int and n >= 0
        for n in shape  # not isinstance: rejects true/false
    ):
        raise BadMessage(f"array {name!r}: shape must be a list of non-negative integers")
    return name, np.dtype(dtype).newbyteorder("<"), tuple(shape)


# ---- policy weights --------------------------------------------------------------------------
# torch is imported on first use: the web service imports this module for frames long
# before (if ever) it loads a policy, and importing torch is slow.


def state_to_bytes(state: Mapping[str, torch.Tensor]) -> bytes:
    """A state dict as safetensors bytes. Tensors are copied to contiguous CPU memory
    first, which also unties shared weights (safetensors refuses aliased tensors)."""
    from safetensors.torch import save

    return save({name: t.detach().cpu().contiguous().clone() for name, t in state.items()})


def bytes_to_state(data: bytes) -> dict[str, torch.Tensor]:
    """The state dict in safetensors bytes; BadMessage if they are not valid safetensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        return load(bytes(data))
    except (SafetensorError, ValueError, OverflowError) as exc:
        raise BadMessage(f"weights are not valid safetensors: {exc}") from None
