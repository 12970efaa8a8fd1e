"""Writes tests/data/unsupported_ops.onnx: a graph whose operators warden
cannot run, one of each kind, to test the start-up message that lists them
all: a standard-domain operator tract lacks (used twice), an ai.onnx.ml
operator warden lacks, and a known operator name in a vendor domain (which
tract, keying by name only, would otherwise run as the standard Relu). One
of them sits inside an If branch, so subgraphs are searched too.
Run with the project venv: .venv/bin/python tests/data/make_unsupported_ops.py"""
import os
import onnx
from onnx import TensorProto, helper

f = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1])
then_branch = helper.make_graph(
    [helper.make_node("WardenNoSuchOp", ["x"], ["t"], name="inside_if")], "then", [], [f("t")]
)
else_branch = helper.make_graph([helper.make_node("Identity", ["x"], ["e"], name="id")], "else", [], [f("e")])
nodes = [
    helper.make_node("WardenNoSuchOp", ["x"], ["a"], name="first"),
    helper.make_node("FeatureHasher", ["a"], ["b"], name="hasher", domain="ai.onnx.ml"),
    helper.make_node("Relu", ["b"], ["c"], name="vendor_relu", domain="com.example"),
    helper.make_node("Cast", ["c"], ["cond"], name="cond", to=TensorProto.BOOL),
    helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_branch, else_branch=else_branch),
]
graph = helper.make_graph(nodes, "unsupported", [f("x")], [f("y")])
model = helper.make_model(
    graph,
    opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 3), helper.make_opsetid("com.example", 1)],
    producer_name="warden-tests",
)
model.ir_version = 7
onnx.save(model, os.path.join(os.path.dirname(os.path.abspath(__file__)), "unsupported_ops.onnx"))
