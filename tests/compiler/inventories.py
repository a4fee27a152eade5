"""Hand-built op inventories for compiler tests (no capture needed).

`Builder` records ops the way capture does: names `<module>.<op type>[_k]`, outputs
`<name>:out<j>`, parameters by fqn, modules in named_modules() order.
"""

from __future__ import annotations

from qplan.compiler.inventory import Inventory, ModuleInfo, Op, TensorRef

LINEAR = ("torch.nn.modules.linear.Linear", "Linear", ("torch.nn.Linear",))
RELU = ("torch.nn.modules.activation.ReLU", "ReLU", ("torch.nn.ReLU",))
CONV = ("torch.nn.modules.conv.Conv2d", "Conv2d", ("torch.nn.Conv2d",))
BN = ("torch.nn.modules.batchnorm.BatchNorm2d", "BatchNorm2d", ("torch.nn.BatchNorm2d",))
EMB = ("torch.nn.modules.sparse.Embedding", "Embedding", ("torch.nn.Embedding",))
SEQ = ("torch.nn.modules.container.Sequential", "Sequential", ("torch.nn.Sequential",))


class Builder:
    def __init__(self, model_class: str = "tests.Model", mode: str = "graph"):
        self.model_class, self.mode = model_class, mode
        self.modules: list[ModuleInfo] = []
        self.params: dict[str, TensorRef] = {}
        self.ops: list[Op] = []
        self.inputs: list[TensorRef] = []
        self.outputs: list[str | None] = []
        self._counts: dict[tuple[str, str], int] = {}
        self.module("", ("tests.Model", "Model", ()))

    def module(self, path, cls, states=None, inputs=(), outputs=()):
        states = dict(states or {})
        fq = {n: (f"{path}.{n}" if path else n) for n in states}
        for n, shape in states.items():
            self.params[fq[n]] = TensorRef(source=fq[n], shape=tuple(shape))
        self.modules.append(
            ModuleInfo(path=path, cls=cls[0], qualname=cls[1], import_paths=cls[2], states=fq,
                       inputs=tuple(inputs), outputs=tuple(outputs))
        )
        return path

    def set_boundary(self, path, inputs=(), outputs=()):
        for k, m in enumerate(self.modules):
            if m.path == path:
                self.modules[k] = ModuleInfo(path=m.path, cls=m.cls, qualname=m.qualname, import_paths=m.import_paths,
                                             states=m.states, inputs=tuple(inputs), outputs=tuple(outputs))

    def input(self, shape, dtype="float32"):
        src = f":in{len(self.inputs)}"
        self.inputs.append(TensorRef(source=src, shape=tuple(shape), dtype=dtype))
        return src

    def op(self, module, op_type, inputs, out_shapes, states=None, in_dtypes=None, out_dtype="float32"):
        k = self._counts.get((module, op_type), 0)
        self._counts[(module, op_type)] = k + 1
        base = f"{module}.{op_type}" if module else op_type
        name = base if k == 0 else f"{base}_{k}"
        refs = []
        for i, src in enumerate(inputs):
            dtype = (in_dtypes or {}).get(i, self._dtype(src))
            refs.append(TensorRef(source=src, shape=self._shape(src), dtype=dtype))
        outs = tuple(TensorRef(source=f"{name}:out{j}", shape=tuple(s), dtype=out_dtype) for j, s in enumerate(out_shapes))
        st = {n: (f"{module}.{n}" if module else n) for n in (states or ())}
        if isinstance(states, dict):
            st = dict(states)
        self.ops.append(Op(name=name, op_type=op_type, module=module, inputs=tuple(refs), states=st, outputs=outs))
        return [o.source for o in outs] if len(outs) != 1 else outs[0].source

    def _find(self, src):
        for t in self.inputs:
            if t.source == src:
                return t
        if src in self.params:
            return self.params[src]
        for op in self.ops:
            for t in op.outputs:
                if t.source == src:
                    return t
        return None

    def _shape(self, src):
        t = self._find(src)
        return t.shape if t else ()

    def _dtype(self, src):
        t = self._find(src)
        return t.dtype if t else "float32"

    def build(self, outputs=None) -> Inventory:
        inv = Inventory(model_class=self.model_class, mode=self.mode, modules=tuple(self.modules),
                        parameters=dict(self.params), ops=tuple(self.ops), inputs=tuple(self.inputs),
                        outputs=tuple(outputs if outputs is not None else self.outputs))
        inv.lint()
        return inv


def mlp(n: int = 2, width: int = 8, mode: str = "graph") -> Inventory:
    """x -> [fc_i (Linear) -> act_i (ReLU)] * n -> output; fc_i and act_i are modules."""
    b = Builder(mode=mode)
    x = b.input((2, width))
    for i in range(n):
        b.module(f"fc{i}", LINEAR, states={"weight": (width, width), "bias": (width,)})
        b.module(f"act{i}", RELU)
    for i in range(n):
        x = b.op(f"fc{i}", "linear", [x], [(2, width)], states=["weight", "bias"])
        x = b.op(f"act{i}", "relu", [x], [(2, width)])
    return b.build(outputs=[x])
