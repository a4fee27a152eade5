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
            ModuleInfo(
                path=path,
                cls=cls[0],
                qualname=cls[1],
                import_paths=cls[2],
                states=fq,
                inputs=tuple(inputs),
                outputs=tuple(outputs),
            )
        )
        return path

    def set_boundary(self, path, inputs=(), outputs=()):
        for k, m in enumerate(self.modules):
            if m.path == path:
                self.modules[k] = ModuleInfo(
                    path=m.path,
                    cls=m.cls,
                    qualname=m.qualname,
                    import_paths=m.import_paths,
                    states=m.states,
                    inputs=tuple(inputs),
                    outputs=tuple(outputs),
                )

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
        outs = tuple(
            TensorRef(source=f"{name}:out{j}", shape=tuple(s), dtype=out_dtype) for j, s in enumerate(out_shapes)
        )
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
        inv = Inventory(
            model_class=self.model_class,
            mode=self.mode,
            modules=tuple(self.modules),
            parameters=dict(self.params),
            ops=tuple(self.ops),
            inputs=tuple(self.inputs),
            outputs=tuple(outputs if outputs is not None else self.outputs),
        )
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


BLOCK = ("tests.Block", "Block", ())
OTHER_BLOCK = ("tests.other.Block", "Block", ())
ATTN = ("tests.Attention", "Attention", ())


def nested(mode: str = "graph", ambiguous: bool = False, unused_output: bool = False) -> Inventory:
    """x -> enc.l0 -> enc.l1 -> dec.l0 -> add(., x): enc and dec are Blocks of Linears.

    `unused_output`: the model returns dec.l0's output and nobody reads add's."""
    b = Builder(mode=mode)
    x = b.input((2, 8))
    b.module("enc", BLOCK)
    b.module("enc.l0", LINEAR, states={"weight": (8, 8), "bias": (8,)})
    b.module("enc.l1", LINEAR, states={"weight": (8, 8), "bias": (8,)})
    b.module("dec", OTHER_BLOCK if ambiguous else BLOCK)
    b.module("dec.l0", LINEAR, states={"weight": (8, 8), "bias": (8,)})
    h = b.op("enc.l0", "linear", [x], [(2, 8)], states=["weight", "bias"])
    e = b.op("enc.l1", "linear", [h], [(2, 8)], states=["weight", "bias"])
    d = b.op("dec.l0", "linear", [e], [(2, 8)], states=["weight", "bias"])
    y = b.op("", "add", [d, x], [(2, 8)])
    b.set_boundary("enc", inputs=[x], outputs=[e])
    b.set_boundary("dec", inputs=[e], outputs=[d])
    b.set_boundary("enc.l0", inputs=[x], outputs=[h])
    return b.build(outputs=[d] if unused_output else [y])


def attn(mode: str = "graph") -> Inventory:
    """q, k projections -> matmul -> softmax -> matmul_1 (with the input) inside `attn`."""
    b = Builder(mode=mode)
    x = b.input((2, 8))
    b.module("attn", ATTN)
    b.module("attn.q", LINEAR, states={"weight": (8, 8)})
    b.module("attn.k", LINEAR, states={"weight": (8, 8)})
    q = b.op("attn.q", "linear", [x], [(2, 8)], states=["weight"])
    k = b.op("attn.k", "linear", [x], [(2, 8)], states=["weight"])
    s = b.op("attn", "matmul", [q, k], [(2, 2)])
    p = b.op("attn", "softmax", [s], [(2, 2)])
    o = b.op("attn", "matmul", [p, x], [(2, 8)])
    return b.build(outputs=[o])


def cnn(mode: str = "graph") -> Inventory:
    """conv -> bn -> relu -> max_pool -> flatten -> fc."""
    b = Builder(mode=mode)
    x = b.input((1, 3, 8, 8))
    b.module("conv", CONV, states={"weight": (4, 3, 3, 3), "bias": (4,)})
    b.module("bn", BN, states={"weight": (4,), "bias": (4,), "running_mean": (4,), "running_var": (4,)})
    b.module("relu", RELU)
    b.module("pool", ("torch.nn.modules.pooling.MaxPool2d", "MaxPool2d", ("torch.nn.MaxPool2d",)))
    b.module("flatten", ("torch.nn.modules.flatten.Flatten", "Flatten", ("torch.nn.Flatten",)))
    b.module("fc", LINEAR, states={"weight": (10, 64), "bias": (10,)})
    h = b.op("conv", "conv2d", [x], [(1, 4, 8, 8)], states=["weight", "bias"])
    h = b.op("bn", "batch_norm", [h], [(1, 4, 8, 8)], states=["weight", "bias", "running_mean", "running_var"])
    h = b.op("relu", "relu", [h], [(1, 4, 8, 8)])
    h = b.op("pool", "max_pool2d", [h], [(1, 4, 4, 4)])
    h = b.op("flatten", "flatten", [h], [(1, 64)])
    y = b.op("fc", "linear", [h], [(1, 10)], states=["weight", "bias"])
    return b.build(outputs=[y])


def concat(mode: str = "graph") -> Inventory:
    """a(x), b(x) -> cat -> c."""
    b = Builder(mode=mode)
    x = b.input((2, 8))
    for m in ("a", "b"):
        b.module(m, LINEAR, states={"weight": (8, 8)})
    b.module("c", LINEAR, states={"weight": (4, 16)})
    ya = b.op("a", "linear", [x], [(2, 8)], states=["weight"])
    yb = b.op("b", "linear", [x], [(2, 8)], states=["weight"])
    y = b.op("", "cat", [ya, yb], [(2, 16)])
    out = b.op("c", "linear", [y], [(2, 4)], states=["weight"])
    return b.build(outputs=[out])


def tied(mode: str = "graph", head_first: bool = False) -> Inventory:
    """embed (int64 indices) -> head, where head reads embed.weight (tied)."""
    b = Builder(mode=mode)
    ids = b.input((2, 5), dtype="int64")
    if head_first:
        b.module("head", LINEAR)
    b.module("embed", EMB, states={"weight": (16, 8)})
    if not head_first:
        b.module("head", LINEAR)
    h = b.op("embed", "embedding", [ids], [(2, 5, 8)], states=["weight"])
    y = b.op("head", "linear", [h], [(2, 5, 16)], states={"weight": "embed.weight"})
    return b.build(outputs=[y])


def views(mode: str = "graph") -> Inventory:
    """fc0 -> view -> (fc1, fc2); fc3 reads fc0 directly (pass-through transparency)."""
    b = Builder(mode=mode)
    x = b.input((2, 8))
    for m in ("fc0", "fc1", "fc2", "fc3"):
        b.module(m, LINEAR, states={"weight": (8, 8)})
    h = b.op("fc0", "linear", [x], [(2, 8)], states=["weight"])
    v = b.op("", "view", [h], [(2, 8)])
    y1 = b.op("fc1", "linear", [v], [(2, 8)], states=["weight"])
    y2 = b.op("fc2", "linear", [v], [(2, 8)], states=["weight"])
    y3 = b.op("fc3", "linear", [h], [(2, 8)], states=["weight"])
    return b.build(outputs=[y1, y2, y3])


def deconv(mode: str = "graph") -> Inventory:
    """conv_transpose2d then layer_norm (axis defaults per op type)."""
    b = Builder(mode=mode)
    x = b.input((1, 4, 4, 4))
    b.module(
        "up",
        ("torch.nn.modules.conv.ConvTranspose2d", "ConvTranspose2d", ("torch.nn.ConvTranspose2d",)),
        states={"weight": (4, 6, 2, 2)},
    )
    b.module(
        "norm",
        ("torch.nn.modules.normalization.LayerNorm", "LayerNorm", ("torch.nn.LayerNorm",)),
        states={"weight": (8,), "bias": (8,)},
    )
    h = b.op("up", "conv_transpose2d", [x], [(1, 6, 8, 8)], states=["weight"])
    y = b.op("norm", "layer_norm", [h], [(1, 6, 8, 8)], states=["weight", "bias"])
    return b.build(outputs=[y])


def scaled(mode: str = "graph") -> Inventory:
    """fc -> mul(fc out, norm.weight): an RMSNorm-like custom state `weight` of `mul`."""
    b = Builder(mode=mode)
    x = b.input((2, 8))
    b.module("fc", LINEAR, states={"weight": (8, 8)})
    b.module("norm", ("tests.RMSNorm", "RMSNorm", ()), states={"weight": (8,)})
    h = b.op("fc", "linear", [x], [(2, 8)], states=["weight"])
    y = b.op("norm", "mul", [h, "norm.weight"], [(2, 8)], states={"weight": "norm.weight"})
    return b.build(outputs=[y])


MODELS = {
    "mlp": mlp,
    "nested": nested,
    "attn": attn,
    "cnn": cnn,
    "concat": concat,
    "tied": tied,
    "views": views,
    "deconv": deconv,
    "scaled": scaled,
}
