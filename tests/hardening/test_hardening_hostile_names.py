"""Names are data, never code: ONNX names that look like C, C keywords, comment ends, names
that collide once sanitized, very long and non-UTF-8 names compile, run as ONNX Runtime does,
and come back from the artifact exactly as the model spells them."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import kiln
from kiln.runtime import load
from reference import assert_matches, run_onnxruntime

INJECTION = 'x"); system("rm -rf ~"); //'
KEYWORD = "int"
INITIALIZER = "*/ #include <stdio.h> /* w"
GRAPH_NAME = '*/ int evil = 1; /* \\\n#define float int\n"'
LONG = "n" * 5000
# Three names that sanitize to the same C identifier, and a fourth reading as code.
COLLIDING = ("a.b", "a-b", "a_b", "a b")
# Two very long names that are equal up to the truncation of sanitized identifiers.
OUTPUTS = ("return", 'y"\\n??/', "ünïcödé ✓ */", COLLIDING[3], "o" * 3000 + "!",
           "o" * 3000 + "?")


def hostile_model() -> onnx.ModelProto:
    """y = f(x, int) with every name hostile; four outputs, intermediate names colliding."""
    w = numpy_helper.from_array(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
                                INITIALIZER)
    nodes = [
        helper.make_node("Add", [INJECTION, INITIALIZER], [COLLIDING[0]], name="*/"),
        helper.make_node("Mul", [KEYWORD, INJECTION], [COLLIDING[1]], name="\n#define x"),
        helper.make_node("Sub", [COLLIDING[0], COLLIDING[1]], [COLLIDING[2]], name=LONG),
        helper.make_node("Relu", [COLLIDING[2]], [OUTPUTS[0]], name="??/"),
        helper.make_node("Neg", [COLLIDING[1]], [OUTPUTS[1]], name="static"),
        helper.make_node("Abs", [COLLIDING[0]], [OUTPUTS[2]], name="' OR 1=1 --"),
        helper.make_node("Sigmoid", [COLLIDING[2]], [OUTPUTS[3]], name=LONG + "2",
                         doc_string="*/ abort(); /*"),
        helper.make_node("Tanh", [COLLIDING[2]], [OUTPUTS[4]], name=LONG + "3"),
        helper.make_node("Exp", [COLLIDING[1]], [OUTPUTS[5]], name=LONG + "4"),
    ]
    graph = helper.make_graph(
        nodes, GRAPH_NAME,
        [helper.make_tensor_value_info(INJECTION, TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info(KEYWORD, TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [2, 3]) for name in OUTPUTS],
        [w], doc_string="*/ */ /*")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              doc_string='"); exit(1); //')
    model.ir_version = 8
    return model


def _feed():
    rng = np.random.default_rng(0)
    return {INJECTION: rng.standard_normal((2, 3)).astype(np.float32),
            KEYWORD: rng.standard_normal((2, 3)).astype(np.float32)}


def test_hostile_names_compile_run_and_come_back_unchanged(tmp_path):
    model = hostile_model()
    feed = _feed()
    expected = run_onnxruntime(model, feed)
    library = kiln.compile(model, output=str(tmp_path / "m.so"), keep_sources=tmp_path / "src")
    with load(library, threads=1) as session:
        assert [t.name for t in session.inputs] == [INJECTION, KEYWORD]
        assert [t.name for t in session.outputs] == list(OUTPUTS)
        assert session.name == GRAPH_NAME
        outputs = session.run(feed)
    assert list(outputs) == list(OUTPUTS)
    for name, want in zip(OUTPUTS, expected):
        assert_matches(outputs[name], want, what=name)
    source = (tmp_path / "src" / "model.c").read_text()
    assert "system(" not in source.replace('system(\\"', "")   # only inside escaped literals
    assert not re.search(r"^\s*#\s*define float", source, re.M)   # never on a line of its own


def test_hostile_header_compiles_and_keeps_comments_closed(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler on PATH")
    library = kiln.compile(hostile_model(), output=str(tmp_path / "m.so"))
    header = (tmp_path / "m.h").read_text()
    assert not re.search(r"^\s*#\s*define float", header, re.M)
    main = tmp_path / "use.c"
    main.write_text('#include "m.h"\nint evil_check(void) { return KILN_NUM_INPUTS; }\n'
                    "#ifdef float\n#error a name leaked out of a comment\n#endif\n")
    result = subprocess.run([cc, "-std=c11", "-Wall", "-Werror", "-Wno-trigraphs",
                             "-fsyntax-only", f"-I{tmp_path}", str(main)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert library.endswith("m.so")


def _non_utf8_model() -> tuple[bytes, bytes, bytes]:
    """Relu, Neg on an input and outputs whose names are not UTF-8 (patched into the bytes)."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["IN__"], ["OUTA"], name="NODE"),
         helper.make_node("Neg", ["IN__"], ["OUTB"])], "GRPH",
        [helper.make_tensor_value_info("IN__", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in ("OUTA", "OUTB")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    data = model.SerializeToString()
    in_name, out_name = b"x\xff\xfe(", b"\xc3(\x80y"
    for old, new in ((b"IN__", in_name), (b"OUTA", out_name), (b"NODE", b"\xed\xa0\x80!"),
                     (b"GRPH", b"g\xf0\x28"), (b"OUTB", b"OUTA")):   # same length each
        data = data.replace(old, new + b"\0" * (len(old) - len(new)) if len(new) < len(old)
                            else new)
    return data, in_name, out_name


def test_non_utf8_names_round_trip(tmp_path):
    data, in_name, out_name = _non_utf8_model()
    library = kiln.compile(data, output=str(tmp_path / "m.so"))
    with load(library, threads=1) as session:
        got_in = session.inputs[0].name
        assert got_in.encode("utf-8", "surrogateescape") == in_name
        names = [t.name.encode("utf-8", "surrogateescape") for t in session.outputs]
        assert names == [out_name, b"OUTA"]
        x = np.array([-2.0, -0.5, 0.0, 3.0], np.float32)
        outputs = list(session.run({got_in: x}).values())
    np.testing.assert_array_equal(outputs[0], np.maximum(x, 0))
    np.testing.assert_array_equal(outputs[1], -x)
    header = (tmp_path / "m.h").read_bytes()
    header.decode("utf-8")   # the header stays valid UTF-8: undecodable bytes became '?'
