"""The protocol's request decoding and response encoding without a server: JSON (flat and
nested) and binary tensors of every datatype, and refusals that name what is wrong. Every
test runs under both JSON codecs (orjson, and the standard module alone)."""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest

from kiln.runtime import TensorInfo
from kiln.serve.errors import BadRequest
from kiln.serve.protocol import (DATATYPES, HEADER_LENGTH, RequestedOutput, UnservableModel,
                                 datatype_name, encode_infer_response, parse_infer_request)
from serve_helpers import CODECS, json_codec


@pytest.fixture(autouse=True, params=CODECS)
def codec(request):
    with json_codec(request.param):
        yield request.param


def tensor(name: str, datatype: str, shape=(2, 2)) -> TensorInfo:
    dtype = DATATYPES[datatype]
    return TensorInfo(name, dtype, tuple(shape), int(np.prod(shape)) * dtype.itemsize)


def binary_request(tensors: dict[str, np.ndarray], **extra) -> tuple[bytes, str]:
    head = json.dumps({"inputs": [{"name": n, "shape": list(a.shape),
                                   "datatype": datatype_name(a.dtype),
                                   "parameters": {"binary_data_size": a.nbytes}}
                                  for n, a in tensors.items()], **extra}).encode()
    return head + b"".join(a.tobytes() for a in tensors.values()), str(len(head))


@pytest.mark.parametrize("datatype", list(DATATYPES))
def test_every_datatype_decodes_from_binary_and_json(datatype):
    info = tensor("t", datatype)
    rng = np.random.default_rng(0)
    value = (rng.integers(0, 2, (2, 2)) if datatype == "BOOL" else
             rng.integers(0, 100, (2, 2))).astype(info.dtype)
    body, length = binary_request({"t": value})
    decoded = parse_infer_request(body, length, [info], []).inputs["t"]
    assert decoded.dtype == info.dtype
    np.testing.assert_array_equal(decoded, value)
    data = value.astype(np.float32).tolist() if datatype in ("FP16", "BF16") else value.tolist()
    body = json.dumps({"inputs": [{"name": "t", "shape": [2, 2], "datatype": datatype,
                                   "data": data}]}).encode()
    np.testing.assert_array_equal(parse_infer_request(body, None, [info], []).inputs["t"],
                                  value)


def test_json_data_flat_or_nested_and_uint64_beyond_int64():
    info = tensor("u", "UINT64")
    big = [2**64 - 1, 2**63, 0, 5]
    for data in (big, [big[:2], big[2:]]):
        body = json.dumps({"inputs": [{"name": "u", "shape": [2, 2], "datatype": "UINT64",
                                       "data": data}]}).encode()
        decoded = parse_infer_request(body, None, [info], []).inputs["u"]
        assert decoded.reshape(-1).tolist() == big


@pytest.mark.parametrize("data, phrase", [
    ([[1, 2, 3], [4]], "nested list of uneven lengths"),
    ([[1, 2], [3, 4], [5, 6]], "has 6 elements in shape [3, 2]"),
    ([1, 2, 3, 4.5], "INT8 data must be integers, got fractions"),
    ([1, 2, 3, 200], "value 200 is out of the range of INT8 (-128 .. 127)"),
    ([True, False, True, True], "INT8 data must be integers, got booleans"),
    ("1234", "'data' must be a list"),
])
def test_json_data_that_would_need_a_silent_conversion_is_refused(data, phrase):
    body = json.dumps({"inputs": [{"name": "q", "shape": [2, 2], "datatype": "INT8",
                                   "data": data}]}).encode()
    with pytest.raises(BadRequest) as error:
        parse_infer_request(body, None, [tensor("q", "INT8")], [])
    assert phrase in str(error.value) and "input 'q'" in str(error.value)


def test_bool_binary_data_must_be_zero_or_one():
    body, length = binary_request({"b": np.array([[0, 1], [2, 1]], np.uint8)})
    body = body.replace(b'"UINT8"', b'"BOOL" ')   # same length: the header still fits
    with pytest.raises(BadRequest, match="BOOL binary data must be bytes 0 or 1"):
        parse_infer_request(body, length, [tensor("b", "BOOL")], [])


def test_binary_inputs_are_taken_in_order_and_outputs_chosen():
    a = np.arange(4, dtype=np.int32).reshape(2, 2)
    b = np.linspace(0, 1, 4).astype(np.float64).reshape(2, 2)
    body, length = binary_request({"a": a, "b": b}, id="r1",
                                  outputs=[{"name": "y", "parameters": {"binary_data": True}}],
                                  parameters={"timeout": 5000})
    request = parse_infer_request(body, length, [tensor("a", "INT32"), tensor("b", "FP64")],
                                  [tensor("x", "FP32"), tensor("y", "FP16")])
    np.testing.assert_array_equal(request.inputs["a"], a)
    np.testing.assert_array_equal(request.inputs["b"], b)
    assert request.id == "r1" and request.timeout_us == 5000
    assert request.outputs == [RequestedOutput("y", True)] and not request.binary_output


def test_responses_mix_binary_and_json_outputs():
    results = {"x": np.array([1.5, 2.5], np.float32),
               "y": np.array([1.0, -2.0], ml_dtypes.bfloat16),
               "z": np.array([True, False])}
    pieces, headers = encode_infer_response("m", "3", "r9", results, None, binary_output=False)
    body = b"".join(pieces)
    assert headers == {"content-type": "application/json"}
    response = json.loads(body)
    assert response["model_version"] == "3" and response["id"] == "r9"
    assert [(o["datatype"], o["data"]) for o in response["outputs"]] == [
        ("FP32", [1.5, 2.5]), ("BF16", [1.0, -2.0]), ("BOOL", [True, False])]
    pieces, headers = encode_infer_response(
        "m", "3", None, results, [RequestedOutput("z", True), RequestedOutput("x")], False)
    body = b"".join(pieces)
    length = int(headers[HEADER_LENGTH])
    response = json.loads(body[:length])
    assert [o["name"] for o in response["outputs"]] == ["z", "x"]
    assert response["outputs"][0]["parameters"] == {"binary_data_size": 2}
    assert body[length:] == b"\x01\x00"
    assert np.shares_memory(np.asarray(pieces[1]), results["z"])   # written from the array


def test_a_storage_type_without_a_datatype_is_unservable():
    with pytest.raises(UnservableModel, match="float8_e4m3fn has no Open Inference Protocol"):
        datatype_name(np.dtype(ml_dtypes.float8_e4m3fn))


def test_json_floats_come_back_exactly_and_non_finite_ones_survive():
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.standard_normal(500), rng.standard_normal(500) * 1e-30,
                             rng.standard_normal(500) * 1e30]).astype(np.float32)
    halves = rng.standard_normal(100).astype(np.float16)
    special = np.array([np.nan, np.inf, -np.inf, 1.0], np.float32)
    pieces, _ = encode_infer_response("m", "1", None, {"f": values, "h": halves, "s": special},
                                      None, binary_output=False)
    f, h, s = (np.array(o["data"]) for o in json.loads(b"".join(pieces))["outputs"])
    np.testing.assert_array_equal(f.astype(np.float32), values)
    np.testing.assert_array_equal(h.astype(np.float16), halves)
    np.testing.assert_array_equal(s.astype(np.float32), special)



#: a model of two inputs, for the requests below
TWO_INPUTS = [tensor("u", "UINT64", [4]), tensor("f", "FP32", [4])]


def two_inputs(u: str, f: str, request_id: str = '"r"') -> bytes:
    return (f'{{"id": {request_id}, "inputs": ['
            f'{{"name": "u", "shape": [4], "datatype": "UINT64", "data": [{u}]}}, '
            f'{{"name": "f", "shape": [4], "datatype": "FP32", "data": [{f}]}}]}}').encode()


@pytest.mark.parametrize("text, phrase", [
    (b'[1, 2, 3, 4', "not valid JSON: Expecting ',' delimiter at line 1 column 12"),
    (b'{"inputs": []', "not valid JSON: Expecting ',' delimiter at line 1 column 14"),
    (b'{"id": "\xff"}', "the request body is not UTF-8 text"),
    (b"[" * 5000, "its lists or objects nest too deeply"),
    (two_inputs("1, 2, 3, 18446744073709551616", "0, 0, 0, 0"),
     "input 'u': value 18446744073709551616 is out of the range of UINT64"),
    (two_inputs("1, 2, 3, 4", "0, 0, 0, 0", request_id="18446744073709551616"),
     "the request's 'id' must be a string, got 18446744073709551616"),
])
def test_json_refusals_read_the_same_under_either_codec(text, phrase):
    """orjson reads integers past 64 bits as floats, and words its syntax errors its own
    way: the message is the standard module's whichever codec runs."""
    with pytest.raises(BadRequest) as error:
        parse_infer_request(text, None, TWO_INPUTS, [])
    assert phrase in str(error.value)


def test_what_orjson_refuses_but_the_standard_module_reads_is_accepted():
    """NaN, Infinity and a lone surrogate in the id: orjson refuses them, the standard module
    reads them; so does kiln serve under either codec. An integer past 64 bits for a float
    is a float under both."""
    text = two_inputs("1, 2, 3, 18446744073709551615", "NaN, Infinity, -Infinity, 1e23",
                      request_id='"\\ud800"')
    request = parse_infer_request(text, None, TWO_INPUTS, [])
    assert request.inputs["u"].tolist() == [1, 2, 3, 2**64 - 1]
    np.testing.assert_array_equal(request.inputs["f"],
                                  np.array([np.nan, np.inf, -np.inf, 1e23], np.float32))
    assert request.id == "\ud800"
    pieces, _ = encode_infer_response("m", "1", request.id, {"y": np.ones(2, np.float32)},
                                      None, binary_output=False)
    assert json.loads(b"".join(pieces))["id"] == "\ud800"
    text = two_inputs("1, 2, 3, 4", "1.5, 0, 0, 100000000000000000000000")
    request = parse_infer_request(text, None, TWO_INPUTS, [])
    np.testing.assert_array_equal(request.inputs["f"], np.array([1.5, 0, 0, 1e23], np.float32))
