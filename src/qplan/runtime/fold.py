"""Graph mode: fold BatchNorm into the preceding conv/linear weight before it is fake-quantized.

The plan records a ``bn-fold`` decision (subjects: the batch-norm op, the weight fqn) for every
fusion group whose BatchNorm the graph-mode runtime folds (see docs/config-language.md#placement-rules). Folding uses the running
statistics (BatchNorm is frozen, the usual QAT recipe for deployment):

    s = gamma / sqrt(running_var + eps)
    w' = w * s (per output channel)          b' = (b - running_mean) * s + beta

``w'`` and ``b'`` are computed in the graph from the live parameters (so QAT trains ``w``,
``gamma`` and ``beta`` through the fold), ``w'`` feeds the weight's fake-quant, and the
BatchNorm node is removed. :func:`materialize_folds` evaluates ``w'``/``b'`` once at finalize.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx, nn

from qplan.compiler.plan import Plan
from qplan.runtime.match import PlanMismatchError

_qd = torch.ops.quantized_decomposed

__all__ = ["fold_batch_norms", "materialize_folds", "fold_eval_batch_norms", "FOLD_META"]

FOLD_META = "qplan_fold"  # node.meta key on the nodes the fold inserts ("weight", "bias" or "")

_aten = torch.ops.aten
_BN = {_aten.batch_norm.default, _aten._native_batch_norm_legit_no_training.default}
_OUT_AXIS = {
    _aten.conv1d.default: 0,
    _aten.conv2d.default: 0,
    _aten.conv3d.default: 0,
    _aten.linear.default: 0,
    _aten.convolution.default: 0,
}


def _bn_args(bn: fx.Node) -> tuple[Any, Any, Any, Any, Any, float]:
    """(input, weight, bias, running_mean, running_var, eps) of a batch-norm node."""
    a: tuple[Any, ...] = bn.args
    if bn.target is _aten.batch_norm.default:
        return a[0], a[1], a[2], a[3], a[4], float(a[7])
    return a[0], a[1], a[2], a[3], a[4], float(a[6])  # _native_batch_norm_legit_no_training


def fold_batch_norms(gm: fx.GraphModule, cap: Any, plan: Plan) -> list[str]:
    """Fold each ``bn-fold`` decision of a graph-mode plan into ``gm`` (already holding its
    fake-quants); returns the folded batch-norm op names. Unfoldable pairs are left as they are."""
    if plan.mode != "graph":
        return []
    by_name = {n.name: n for n in gm.graph.nodes}
    folded: list[str] = []
    for d in plan.decisions:
        if d.kind != "bn-fold" or len(d.subjects) != 2:
            continue
        bn_op, weight_fqn = d.subjects
        ep_bn = cap.nodes.get(bn_op)
        bn = by_name.get(ep_bn.name) if ep_bn is not None else None
        if bn is None:
            raise PlanMismatchError(f"batch-norm op `{bn_op}` of a bn-fold decision has no node in the graph")
        if bn.target not in _BN:
            continue
        if _fold_one(gm, bn, weight_fqn):
            folded.append(bn_op)
    if folded:
        gm.graph.lint()
        gm.recompile()
    return folded


def _fold_one(gm: fx.GraphModule, bn: fx.Node, weight_fqn: str) -> bool:
    graph = gm.graph
    x, gamma, beta, mean, var, eps = _bn_args(bn)
    producer = x
    if not isinstance(producer, fx.Node) or producer.target not in _OUT_AXIS or len(producer.users) != 1:
        return False
    w = producer.args[1]
    bias = producer.args[2] if len(producer.args) > 2 else producer.kwargs.get("bias")
    if producer.target is _aten.convolution.default and producer.args[6]:  # transposed
        return False
    # the weight as the producer reads it: a fake-quant node on the parameter, or the parameter
    fq = w if isinstance(w, fx.Node) and w.op == "call_module" else None
    if fq is not None and len(fq.users) != 1:  # a weight shared with other readers stays unfolded
        return False
    param = fq.args[0] if fq is not None else w
    if not isinstance(param, fx.Node) or param.op != "get_attr":
        return False
    ndim = len(_attr(gm, str(param.target)).shape)
    # users of a tuple-returning batch norm read element 0 through getitem
    outs = [bn]
    if bn.target is not _aten.batch_norm.default:
        outs = [u for u in bn.users if u.target is operator.getitem and u.args[1] == 0]
        if len(outs) != len(bn.users):
            return False
    anchor = producer
    if fq is not None:  # the fake-quant moves next to its reader, after the statistics it now reads
        producer.prepend(fq)
        anchor = fq
    with graph.inserting_before(anchor):
        s = graph.call_function(_aten.rsqrt.default, (graph.call_function(_aten.add.Tensor, (var, eps)),))
        if gamma is not None:
            s = graph.call_function(_aten.mul.Tensor, (gamma, s))
        s_w = graph.call_function(_aten.reshape.default, (s, [-1] + [1] * (ndim - 1)))
        w_fold = graph.call_function(_aten.mul.Tensor, (param, s_w))
        centred = (
            graph.call_function(_aten.neg.default, (mean,))
            if bias is None
            else graph.call_function(_aten.sub.Tensor, (bias, mean))
        )
        b_fold = graph.call_function(_aten.mul.Tensor, (centred, s))
        if beta is not None:
            b_fold = graph.call_function(_aten.add.Tensor, (b_fold, beta))
    for n in _between(s, w_fold, b_fold):
        n.meta[FOLD_META] = ""
    w_fold.meta[FOLD_META] = "weight"
    b_fold.meta[FOLD_META] = "bias"
    if fq is not None:
        fq.replace_input_with(param, w_fold)
    else:
        producer.replace_input_with(param, w_fold)
    if len(producer.args) > 2:
        producer.update_arg(2, b_fold)
    elif "bias" in producer.kwargs:
        producer.update_kwarg("bias", b_fold)
    else:
        producer.update_arg(2, b_fold)
    for o in outs:
        o.replace_all_uses_with(producer)
    for o in outs:
        if o is not bn:
            graph.erase_node(o)
    graph.erase_node(bn)
    return True


def _between(*ends: fx.Node) -> list[fx.Node]:
    """The fold's intermediate nodes: inputs of ``ends`` that are call_functions, recursively."""
    seen: list[fx.Node] = []
    todo = list(ends)
    while todo:
        n = todo.pop()
        if n in seen or n.op != "call_function":
            continue
        seen.append(n)
        todo.extend(n.all_input_nodes)
    return seen


def _attr(gm: fx.GraphModule, target: str) -> torch.Tensor:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _evaluate(gm: fx.GraphModule, node: fx.Node, memo: dict[fx.Node, Any]) -> Any:
    if node in memo:
        return memo[node]
    if node.op == "get_attr":
        val = _attr(gm, str(node.target)).detach()
    elif node.op == "call_function":
        args = fx.node.map_arg(node.args, lambda n: _evaluate(gm, n, memo))
        kwargs = fx.node.map_arg(node.kwargs, lambda n: _evaluate(gm, n, memo))
        fn: Any = node.target
        val = fn(*args, **kwargs)
    else:
        raise ValueError(f"cannot evaluate `{node.name}` ({node.op}) at finalize")
    memo[node] = val
    return val


def materialize_folds(gm: fx.GraphModule) -> dict[fx.Node, torch.Tensor]:
    """Values of the folded weights and biases of ``gm`` (keyed by their fold nodes)."""
    memo: dict[fx.Node, Any] = {}
    with torch.no_grad():
        return {n: _evaluate(gm, n, memo) for n in gm.graph.nodes if n.meta.get(FOLD_META) in ("weight", "bias")}


_CONVS = (torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default, torch.ops.aten.conv3d.default)


def fold_eval_batch_norms(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """Fold each eval-mode BatchNorm that alone reads a conv with a per-channel (axis 0) dequantized
    weight into that weight's scale and the conv's bias: ``conv(x, (q-zp)·s)·k + c = conv(x, (q-zp)·s·k) + c``
    per output channel (``k = γ/√(σ²+ε)``), so the stored codes are unchanged and backends (XNNPACK) see
    a quantized conv. Eager-mode programs have these (graph mode folds BatchNorm before quantizing).
    Skipped when a ``k`` is not positive (a negative scale) or the conv has no bias."""
    sig = ep.graph_signature
    fqn = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
    state = ep.state_dict
    changed = False
    for bn in list(ep.graph.nodes):
        if bn.target != torch.ops.aten.batch_norm.default or bn.args[5]:  # training-mode batch norm
            continue
        conv = bn.args[0]
        if not (isinstance(conv, fx.Node) and conv.target in _CONVS and len(conv.users) == 1):
            continue
        dq, bias = conv.args[1], conv.args[2] if len(conv.args) > 2 else None
        if not (isinstance(dq, fx.Node) and dq.target == _qd.dequantize_per_channel.default and dq.args[3] == 0):
            continue
        nodes = [a for a in (dq.args[1], bias, *bn.args[1:5]) if isinstance(a, fx.Node)]
        names = [fqn.get(n.name) for n in nodes]  # scale, conv bias, gamma, beta, mean, var
        if len(nodes) != 6 or len(set(names)) != 6 or not all(n in state for n in names):
            continue
        scale, b, gamma, beta, mean, var = (state[str(n)].detach() for n in names)
        k = gamma / torch.sqrt(var + float(bn.args[7]))
        if not bool((k > 0).all()):
            continue
        new_bias = (b - mean) * k + beta
        old = state[str(names[1])]
        state[str(names[0])] = scale * k
        state[str(names[1])] = (
            nn.Parameter(new_bias, requires_grad=False) if isinstance(old, nn.Parameter) else new_bias
        )
        bn.replace_all_uses_with(conv)
        ep.graph.erase_node(bn)
        changed = True
    if changed:
        ep.graph.lint()
        ep.graph_module.recompile()
    return ep
