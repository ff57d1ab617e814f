"""What the loader keeps of onnxruntime's error messages: the cause, not its source paths."""

from __future__ import annotations

from edgeline.runtime.loader import _ort_message

RESHAPE = ("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Reshape node. Name:'' "
           "Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/tensor/reshape_helper.h:91 "
           "onnxruntime::ReshapeHelper::ReshapeHelper(const onnxruntime::TensorShape&, "
           "onnxruntime::TensorShapeVector&, bool) input_shape_size == requested_shape_size was false. "
           "The input tensor cannot be reshaped to the requested shape. Input shape:{1,8}, requested shape:{1,3,3}\n")


def test_kernel_failures_keep_the_node_and_the_cause():
    assert _ort_message(RuntimeError(RESHAPE)) == (
        "Non-zero status code returned while running Reshape node. Name:'' The input tensor cannot be reshaped "
        "to the requested shape. Input shape:{1,8}, requested shape:{1,3,3}")


def test_other_messages_lose_only_the_prefix_and_line_breaks():
    assert _ort_message(RuntimeError("[ONNXRuntimeError] : 10 : INVALID_GRAPH : Load model failed:\n bad")) \
        == "Load model failed: bad"
    assert _ort_message(ValueError("")) == "ValueError"
    assert len(_ort_message(RuntimeError("x" * 2000))) == 500
