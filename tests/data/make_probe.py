"""Writes tests/data/probe.onnx: one node of the custom op type `WardenProbe`
(input x -> output y). The lockdown tests register a builder for that op type
whose code runs while the model is parsed, to prove parsing happens inside
the walls. Run with the project venv: .venv/bin/python tests/data/make_probe.py"""
import os
import onnx
from onnx import TensorProto, helper

node = helper.make_node("WardenProbe", ["x"], ["y"], name="probe")
graph = helper.make_graph(
    [node], "probe",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="warden-tests")
model.ir_version = 7
onnx.save(model, os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe.onnx"))
