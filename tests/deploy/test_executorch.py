"""ExecuTorch's own XNNPACK flow on qplan's finalized programs: full delegation, a running ``.pte``.

One lowering per (model, mode), shared by the module's tests: lowering is slow (seconds each).
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("executorch")

from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.exir import to_edge_transform_and_lower
from executorch.runtime import Runtime

from qplan import models
from qplan.runtime import Quantizer
from qplan.schema.types import QuantizerConfig

# what may stay outside a delegate: shape bookkeeping around dynamic sizes (no tensor arithmetic):
# these ops, and integer arithmetic on symbolic sizes (a flatten's `h * w` when the image size is dynamic)
_BOOKKEEPING = ("getitem", "sym_size", "view_copy", "executorch_call_delegate")


def _is_size_arithmetic(node: torch.fx.Node) -> bool:
    return isinstance(node.meta.get("val"), (torch.SymInt, int))


CASES = [("mlp", "graph"), ("mlp", "eager"), ("cnn", "graph"), ("cnn", "eager")]


@pytest.fixture(scope="module", params=CASES, ids=[f"{m}-{mode}" for m, mode in CASES])
def lowered(request):
    name, mode = request.param
    model, args = getattr(models, name)()
    q = Quantizer(model, QuantizerConfig.presets.w8a8(), mode=mode)
    prepared = q.prepare(args)
    q.calibration_mode()
    with torch.no_grad():
        prepared(*args)
        q.inference_mode()
        expected = prepared(*args)
    edge = to_edge_transform_and_lower(q.finalize(), partitioner=[XnnpackPartitioner()])
    outside = [
        str(n.target)
        for n in edge.exported_program().graph.nodes
        if n.op == "call_function" and not any(k in str(n.target) for k in _BOOKKEEPING) and not _is_size_arithmetic(n)
    ]
    delegates = sum("executorch_call_delegate" in str(n.target) for n in edge.exported_program().graph.nodes)
    return edge, outside, delegates, args, expected


def test_every_op_is_delegated_to_xnnpack(lowered) -> None:
    _, outside, delegates, _, _ = lowered
    assert outside == [] and delegates >= 1


def test_pte_runs_in_the_executorch_runtime_like_the_prepared_model(lowered) -> None:
    edge, _, _, args, expected = lowered
    buffer = edge.to_executorch().buffer
    method = Runtime.get().load_program(buffer).load_method("forward")
    (out,) = method.execute(list(args))
    # XNNPACK requantizes in int8 arithmetic: within a few output steps of qplan's float emulation
    torch.testing.assert_close(out, expected, rtol=0, atol=0.02)
