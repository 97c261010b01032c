"""Binary frames and safetensors weights (broker/codec.py): round trips, and every
malformed frame is a BadMessage (which consumers dead-letter) rather than a crash inside
an actor."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
import torch

from broker.codec import (
    DTYPES,
    MAGIC,
    bytes_to_state,
    decode_frame,
    encode_frame,
    state_to_bytes,
)
from schemas.messages import (
    BadMessage,
    CreditGranted,
    EpisodeFinished,
    ExperienceHeader,
    SamplesHeader,
    WeightsHeader,
)

HEADER = ExperienceHeader(run_id=4, worker=2, policy_version=11, env_steps=1000)
GOOD_HEADER = HEADER.model_dump(mode="json")


def raw_frame(meta: dict | bytes, payload: bytes = b"", *, length: int | None = None) -> bytes:
    """A frame assembled by hand, to break one part of it at a time."""
    head = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    return MAGIC + struct.pack(">I", len(head) if length is None else length) + head + payload


def one_array(dtype="float32", shape=(2,), name="x") -> dict:
    return {"header": GOOD_HEADER, "arrays": [{"name": name, "dtype": dtype, "shape": shape}]}


# ---- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_every_allowed_dtype_round_trips(dtype):
    array = (np.arange(24) % 2).astype(dtype).reshape(2, 3, 4)
    header, arrays = decode_frame(encode_frame(HEADER, {"a": array}))
    assert header == HEADER
    assert arrays["a"].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(arrays["a"], array)


def test_many_arrays_keep_order_names_and_shapes():
    rng = np.random.default_rng(1)
    arrays = {
        "obs": rng.normal(size=(32, 4)).astype(np.float32),
        "action": rng.integers(0, 2, size=32),
        "reward": rng.normal(size=32),
        "next_obs": rng.normal(size=(32, 4)).astype(np.float32),
        "terminated": rng.random(32) < 0.1,
        "scalar": np.float64(2.5),
        "empty": np.zeros((0, 7), np.int32),
    }
    header, decoded = decode_frame(encode_frame(SamplesHeader(run_id=1, seq=3), arrays))
    assert header == SamplesHeader(run_id=1, seq=3)
    assert list(decoded) == list(arrays)
    for name, array in arrays.items():
        assert decoded[name].shape == np.shape(array)
        np.testing.assert_array_equal(decoded[name], array)


def test_big_endian_and_non_contiguous_inputs_are_written_little_endian_c_order():
    big = np.arange(6, dtype=">i4").reshape(2, 3)
    strided = np.arange(20, dtype=np.float64).reshape(4, 5)[:, ::2].T
    frame = encode_frame(HEADER, {"big": big, "strided": strided})
    _, arrays = decode_frame(frame)
    np.testing.assert_array_equal(arrays["big"], big)
    np.testing.assert_array_equal(arrays["strided"], strided)
    assert frame.endswith(np.ascontiguousarray(strided, dtype="<f8").tobytes())


def test_decoded_arrays_are_read_only_views():
    _, arrays = decode_frame(encode_frame(HEADER, {"x": np.zeros(3, np.float32)}))
    with pytest.raises(ValueError, match="read-only"):
        arrays["x"][0] = 1.0
    assert arrays["x"].copy().flags.writeable


def test_every_frame_header_type_is_accepted():
    for header in (
        HEADER,
        SamplesHeader(run_id=1, seq=0),
        WeightsHeader(run_id=1, version=5),
        CreditGranted(run_id=1, consumed=9),
    ):
        assert decode_frame(encode_frame(header, {}))[0] == header


def test_encoding_refuses_other_dtypes_and_non_frame_headers():
    with pytest.raises(TypeError, match="float16"):
        encode_frame(HEADER, {"x": np.zeros(2, np.float16)})
    with pytest.raises(TypeError, match="object"):
        encode_frame(HEADER, {"x": np.array([object()])})
    event = EpisodeFinished(run_id=1, worker=0, seq=0, reward=1.0, length=1)
    with pytest.raises(TypeError, match="not a frame header"):
        encode_frame(event, {})


# ---- malformed frames --------------------------------------------------------------------------

MALFORMED = {
    "empty": b"",
    "shorter than the prefix": MAGIC + b"\0\0",
    "bad magic": b"RNT2" + raw_frame(one_array())[4:] + bytes(8),
    "pickle": b"\x80\x04\x95" + bytes(20),
    "header length past the end": raw_frame(one_array(), length=10_000),
    "header not JSON": raw_frame(b"{not json"),
    "header not UTF-8": raw_frame(b"\xff\xfe"),
    "header a list": raw_frame(b"[]"),
    "missing arrays": raw_frame({"header": GOOD_HEADER}),
    "extra key": raw_frame({**one_array(), "pickle": True}, bytes(8)),
    "header record not an object": raw_frame({"header": "experience", "arrays": []}),
    "unknown message type": raw_frame({"header": {"type": "shell"}, "arrays": []}),
    "unknown schema version": raw_frame(
        {"header": {**GOOD_HEADER, "schema_version": 2}, "arrays": []}
    ),
    "header record with a bad field": raw_frame(
        {"header": {**GOOD_HEADER, "worker": "two"}, "arrays": []}
    ),
    "arrays not a list": raw_frame({"header": GOOD_HEADER, "arrays": {}}),
    "array spec not an object": raw_frame({"header": GOOD_HEADER, "arrays": [1]}),
    "array spec missing shape": raw_frame(
        {"header": GOOD_HEADER, "arrays": [{"name": "x", "dtype": "uint8"}]}
    ),
    "empty name": raw_frame(one_array(name=""), bytes(8)),
    "name not a string": raw_frame(one_array(name=3), bytes(8)),
    "dtype not allowed": raw_frame(one_array(dtype="object"), bytes(16)),
    "dtype with byte order": raw_frame(one_array(dtype=">f4"), bytes(8)),
    "negative dimension": raw_frame(one_array(shape=[-2]), bytes(8)),
    "fractional dimension": raw_frame(one_array(shape=[1.5]), bytes(8)),
    "boolean dimension": raw_frame(one_array(shape=[True]), bytes(4)),
    "shape not a list": raw_frame(one_array(shape=2), bytes(8)),
    "duplicate names": raw_frame(
        {"header": GOOD_HEADER, "arrays": one_array()["arrays"] * 2}, bytes(16)
    ),
    "array data cut short": raw_frame(one_array(shape=[4]), bytes(15)),
    "huge shape": raw_frame(one_array(shape=[2**40, 2**40]), bytes(8)),
    "absurd dimension of an empty array": raw_frame(one_array(shape=[0, 2**70])),
    "empty array too big for numpy": raw_frame(one_array(shape=[0, 2**62])),
    "trailing bytes": raw_frame(one_array(shape=[2]), bytes(9)),
    "bool that is not 0 or 1": raw_frame(one_array(dtype="bool", shape=[3]), b"\0\1\2"),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_frames_are_bad_messages(body):
    with pytest.raises(BadMessage):
        decode_frame(body)


def test_a_message_that_is_not_a_frame_header_is_a_bad_message():
    event = EpisodeFinished(run_id=1, worker=0, seq=0, reward=1.0, length=1)
    body = raw_frame({"header": event.model_dump(mode="json"), "arrays": []})
    with pytest.raises(BadMessage, match="not a frame header"):
        decode_frame(body)


def test_frames_over_the_size_limit_are_refused_before_parsing():
    frame = encode_frame(HEADER, {"x": np.zeros(1000, np.uint8)})
    with pytest.raises(BadMessage, match="exceeds the limit"):
        decode_frame(frame, max_bytes=len(frame) - 1)
    assert decode_frame(frame, max_bytes=len(frame))[0] == HEADER


def test_bad_message_reasons_name_the_problem():
    with pytest.raises(BadMessage, match="magic"):
        decode_frame(b"GIF89a" + bytes(10))
    with pytest.raises(BadMessage, match=r"'x' runs past the end"):
        decode_frame(MALFORMED["array data cut short"])
    with pytest.raises(BadMessage, match="left over"):
        decode_frame(MALFORMED["trailing bytes"])


# ---- policy weights ----------------------------------------------------------------------------


def test_state_dicts_round_trip_through_safetensors():
    linear = torch.nn.Linear(4, 3)
    state = {
        **linear.state_dict(),
        "steps": torch.tensor(12, dtype=torch.int64),
        "transposed": torch.arange(6.0).reshape(2, 3).T,  # not contiguous
        "half": torch.ones(2, dtype=torch.float16),
    }
    loaded = bytes_to_state(state_to_bytes(state))
    assert loaded.keys() == state.keys()
    for name, tensor in state.items():
        assert loaded[name].dtype == tensor.dtype
        assert torch.equal(loaded[name], tensor), name


def test_tied_weights_are_saved_as_separate_tensors():
    weight = torch.randn(3, 3)
    loaded = bytes_to_state(state_to_bytes({"encoder": weight, "decoder": weight}))
    assert torch.equal(loaded["encoder"], loaded["decoder"])


@pytest.mark.parametrize("data", [b"", b"garbage", b"\xff" * 64], ids=["empty", "text", "ff"])
def test_invalid_weights_are_bad_messages(data):
    with pytest.raises(BadMessage, match="safetensors"):
        bytes_to_state(data)


def test_pickled_weights_are_refused():
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    with pytest.raises(BadMessage):
        bytes_to_state(buffer.getvalue())
