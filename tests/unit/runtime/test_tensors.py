"""OIP v2 JSON tensors: datatypes, request parsing and response encoding, as tables of cases."""

from __future__ import annotations

import numpy as np
import pytest

from edgeline.runtime.tensors import (
    NUMPY_TYPES,
    ONNX_TYPES,
    BadRequest,
    TensorSpec,
    datatype_of,
    decode_tensor,
    encode_infer_response,
    encode_tensor,
    metadata_shape,
    oip_datatype,
    parse_infer_request,
)

IMAGE = TensorSpec("image", "FP32", (-1, 3))
MASK = TensorSpec("mask", "BOOL", (2,))
INPUTS = [IMAGE, MASK]
OUTPUTS = [TensorSpec("scores", "FP32", (-1, 2)), TensorSpec("labels", "INT64", (-1,))]


def request(**overrides):
    image = {"name": "image", "datatype": "FP32", "shape": [2, 3], "data": [1, 2, 3, 4, 5, 6.5]}
    mask = {"name": "mask", "datatype": "BOOL", "shape": [2], "data": [True, False]}
    return {"inputs": [{**image, **overrides}, mask]}


@pytest.mark.parametrize("onnx_type, datatype", [
    ("tensor(float)", "FP32"), ("tensor(double)", "FP64"), ("tensor(float16)", "FP16"), ("tensor(int64)", "INT64"),
    ("tensor(int8)", "INT8"), ("tensor(uint8)", "UINT8"), ("tensor(bool)", "BOOL"), ("tensor(string)", "BYTES"),
    ("tensor(bfloat16)", "tensor(bfloat16)"),  # no OIP name in JSON: shown as onnxruntime names it
])
def test_onnx_types_map_to_oip_datatypes(onnx_type, datatype):
    assert oip_datatype(onnx_type) == datatype


def test_every_oip_datatype_round_trips_through_numpy():
    for name, dtype in NUMPY_TYPES.items():
        if name != "BYTES":
            assert datatype_of(np.zeros(1, dtype)) == name
    assert datatype_of(np.array(["a"], dtype=object)) == "BYTES"
    assert set(ONNX_TYPES.values()) == set(NUMPY_TYPES)


@pytest.mark.parametrize("dims, shape", [
    (["batch", 3, 64, 64], (-1, 3, 64, 64)), ([None, 2], (-1, 2)), ([], ()), (None, ()),
])
def test_metadata_shape_marks_variable_dimensions(dims, shape):
    assert metadata_shape(dims) == shape


def test_a_valid_request_becomes_typed_arrays_of_the_right_shape():
    parsed = parse_infer_request({**request(), "id": "r1", "outputs": [{"name": "labels"}]}, INPUTS, OUTPUTS)
    assert parsed.id == "r1" and parsed.outputs == ["labels"]
    image = parsed.inputs["image"]
    assert image.dtype == np.float32 and image.shape == (2, 3) and image[1, 2] == np.float32(6.5)
    assert parsed.inputs["mask"].dtype == np.bool_
    assert parse_infer_request(request(), INPUTS, OUTPUTS).outputs is None


def test_nested_data_is_accepted_in_row_major_order():
    parsed = parse_infer_request(request(data=[[1, 2, 3], [4, 5, 6]]), INPUTS, OUTPUTS)
    assert parsed.inputs["image"].tolist() == [[1, 2, 3], [4, 5, 6]]


@pytest.mark.parametrize("body, message", [
    ([], "must be a JSON object"),
    ({}, "`inputs` must be a non-empty list"),
    ({"inputs": []}, "`inputs` must be a non-empty list"),
    ({"inputs": ["image"]}, "inputs[0] must be an object with a string `name`"),
    ({"id": 5, "inputs": []}, "`id` must be a string"),
    ({"inputs": [{"name": "label"}]}, "no input 'label'; its inputs are 'image', 'mask'"),
    ({"inputs": request()["inputs"][:1]}, "missing input(s) 'mask'"),
    ({"inputs": request()["inputs"] + request()["inputs"][:1]}, "input 'image' is given twice"),
    ({**request(), "outputs": [{"name": "boxes"}]}, "no output(s) 'boxes'"),
    ({**request(), "outputs": ["scores"]}, "`outputs` must be a list of objects"),
    (request(datatype="FLOAT"), "datatype must be one of"),
    (request(datatype="FP64"), "input 'image' is FP64, but the model expects FP32"),
    (request(shape=[6]), "has shape [6], but the model expects [-1, 3]"),
    (request(shape=[2, 4]), "has shape [2, 4], but the model expects [-1, 3]"),
    (request(shape=[2, -3]), "`shape` must be a list of non-negative integers"),
    (request(shape=[2, True]), "`shape` must be a list of non-negative integers"),
    (request(shape="2x3"), "`shape` must be a list of non-negative integers"),
    (request(data="123456"), "`data` must be a list"),
    (request(data=[1, 2, 3]), "shape [2, 3] needs 6 elements, `data` has 3"),
    (request(data=[[1, 2, 3], [4, 5]]), "ragged"),
    (request(data=["1", "2", "3", "4", "5", "6"]), "FP32 data must be JSON numbers"),
    (request(data=[None] * 6), "FP32 data must be JSON numbers"),
])
def test_requests_the_model_cannot_take_are_refused_with_a_reason(body, message):
    with pytest.raises(BadRequest) as refused:
        parse_infer_request(body, INPUTS, OUTPUTS)
    assert message in str(refused.value)


@pytest.mark.parametrize("datatype, data, message", [
    ("INT64", [1.5, 2], "INT64 data must be JSON integers"),  # never truncated silently
    ("INT8", [300, 1], "a value does not fit in INT8"),
    ("UINT8", [-1, 1], "a value does not fit in UINT8"),
    ("BOOL", [1, 0], "BOOL data must be JSON booleans"),
    ("BYTES", [1, 2], "BYTES data must be JSON strings"),
])
def test_values_must_fit_the_datatype(datatype, data, message):
    with pytest.raises(BadRequest, match=message):
        decode_tensor({"datatype": datatype, "shape": [2], "data": data}, TensorSpec("x", datatype, (2,)))


@pytest.mark.parametrize("datatype, data, dtype", [
    ("INT64", [1, -2], np.int64), ("UINT8", [0, 255], np.uint8), ("FP16", [0.5, 1], np.float16),
    ("FP64", [0.1, 2], np.float64), ("BOOL", [True, False], np.bool_), ("BYTES", ["ok", "defect"], object),
])
def test_values_that_fit_are_decoded_to_the_datatype(datatype, data, dtype):
    array = decode_tensor({"datatype": datatype, "shape": [2], "data": data}, TensorSpec("x", datatype, (2,)))
    assert array.dtype == np.dtype(dtype) and array.tolist() == data


def test_an_empty_batch_is_a_valid_tensor():
    array = decode_tensor({"datatype": "FP32", "shape": [0, 3], "data": []}, IMAGE)
    assert array.shape == (0, 3) and array.dtype == np.float32


def test_outputs_are_encoded_flat_with_their_shape_and_datatype():
    scores = np.array([[0.25, 0.75], [1.0, 0.0]], np.float32)
    assert encode_tensor("scores", scores) == {"name": "scores", "datatype": "FP32", "shape": [2, 2],
                                               "data": [0.25, 0.75, 1.0, 0.0]}
    assert encode_tensor("names", np.array([b"ok", "defect"], dtype=object))["data"] == ["ok", "defect"]
    response = encode_infer_response("detector", "2.0.0", "r1", {"labels": np.array([1, 0], np.int64)})
    assert response == {"model_name": "detector", "model_version": "2.0.0", "id": "r1",
                        "outputs": [{"name": "labels", "datatype": "INT64", "shape": [2], "data": [1, 0]}]}
    assert "id" not in encode_infer_response("detector", "2.0.0", None, {})
