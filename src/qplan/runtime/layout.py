"""Qparam layout of one fake-quantized tensor: per-tensor, per-channel or per-block.

It fixes the qparams' shape from the plan shape, the dims a range reduces over, and how qparams
broadcast against the tensor. Per-block tensors are viewed with every dim split into
``(blocks, block length)``; per-block qparams are ``[n_0, n_1, ...]`` (blocks per dim, the torchao layout).

Activations with stored qparams never block their batch dimension (dim 0): one block spans the
whole batch, so every example of a batch shares the qparams of its position and the qparams' shape
(``n_0 = 1``) does not depend on the batch size. Dynamic activations (qparams computed per forward)
may block dim 0, as per-token quantization does: their block counts follow each tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from qplan.compiler.plan import ResolvedSpec

__all__ = ["QParamLayout", "block_bshape"]


def block_bshape(vshape: Sequence[int]) -> tuple[int, ...]:
    """Broadcast shape of per-block qparams against a ``(blocks, length)``-split view."""
    return tuple(1 if i % 2 else n for i, n in enumerate(vshape))


class QParamLayout:
    """Granularity of one spec on one plan shape (``is_weight``: integer block sizes collapse only the
    two leading dims; ``dynamic``: block counts follow the tensor instead of the plan shape)."""

    def __init__(self, spec: ResolvedSpec, shape: tuple[int, ...], *, is_weight: bool, dynamic: bool, name: str | None):
        self.spec, self.shape, self.name, self.dynamic = spec, shape, name, dynamic
        ndim = len(shape)
        self.granularity = spec.granularity
        self.axis: int | None = None
        self.block: tuple[int | None, ...] | None = None  # per dim: block length, None = whole dim
        self.qparams_shape: tuple[int, ...] = ()
        self.rdims: tuple[int, ...] = ()  # dims a range reduces over
        self.bshape: tuple[int, ...] = ()  # broadcast shape of the qparams (per-block: per call)
        if spec.granularity == "per_channel":
            axis = self.axis = self._check_axis(spec.axis, ndim)
            self.qparams_shape = (shape[axis],)
            self.rdims = tuple(i for i in range(ndim) if i != axis)
            self.bshape = tuple(shape[axis] if i == axis else 1 for i in range(ndim))
        elif spec.granularity == "per_block":
            block = self._resolve_block(spec, shape, is_weight)
            self.block = tuple(None if b == d else b for b, d in zip(block, shape, strict=True))
            self.qparams_shape = tuple(d // b for d, b in zip(shape, block, strict=True))
            self.rdims = tuple(range(1, 2 * ndim, 2))
        elif spec.granularity != "per_tensor":
            raise ValueError(f"unsupported granularity `{spec.granularity}`")

    def _check_axis(self, axis: int | None, ndim: int) -> int:
        if axis is None:
            raise ValueError(f"{self.spec.granularity} needs a resolved axis (got none) for `{self.name}`")
        a = axis + ndim if axis < 0 else axis
        if not 0 <= a < ndim:
            raise ValueError(f"axis {axis} is out of range for a tensor of shape {list(self.shape)} (`{self.name}`)")
        return a

    def _resolve_block(self, spec: ResolvedSpec, shape: tuple[int, ...], is_weight: bool) -> tuple[int, ...]:
        ndim = len(shape)
        bs = spec.block_size
        if isinstance(bs, (tuple, list)):
            if len(bs) != ndim:
                raise ValueError(
                    f"block_size {list(bs)} needs one entry per dim of shape {list(shape)} (`{self.name}`)"
                )
            block = [d if b == -1 else int(b) for b, d in zip(bs, shape, strict=True)]
        elif isinstance(bs, int):
            axis = self._check_axis(spec.axis, ndim)
            # weights: only the two leading (channel) dims split, kernel dims stay whole;
            # activations: one block per position along every other dim (static: but the batch, dim 0).
            collapse = min(2, ndim) if is_weight else ndim
            block = list(shape)
            for i in range(collapse):
                block[i] = 1
            block[axis] = bs
        else:
            raise ValueError(f"per_block needs a block_size (`{self.name}`)")
        if not is_weight and not self.dynamic and ndim:
            self._span_batch(block, bs, shape)
        for b, d in zip(block, shape, strict=True):
            if b <= 0 or d % b:
                raise ValueError(f"block_size {bs} does not divide shape {list(shape)} (`{self.name}`)")
        return tuple(block)

    def _span_batch(self, block: list[int], bs: object, shape: tuple[int, ...]) -> None:
        """Make an activation's first block span the whole batch dimension (in place)."""
        explicit = isinstance(bs, (tuple, list)) and bs[0] not in (-1, shape[0])
        if explicit or (isinstance(bs, int) and self._check_axis(self.spec.axis, len(shape)) == 0):
            raise ValueError(
                f"per-block activation `{self.name}` cannot block its batch dimension (dim 0, block_size {bs}): "
                "activation blocks span the whole batch so that qparams do not depend on the batch size; "
                "help: block another axis (for example `axis: -1`), or give dim 0 the block size -1"
            )
        block[0] = shape[0]

    def view_shape(self, shape: Sequence[int]) -> list[int]:
        """Split every dim into ``(blocks, block length)`` for per-block reductions and broadcasts."""
        assert self.block is not None
        out: list[int] = []
        for d, b, n in zip(shape, self.block, self.qparams_shape, strict=True):
            if b is None:
                out += (1, d)
            elif self.dynamic:
                out += (d // b, b)
            else:
                if d != n * b:
                    raise ValueError(
                        f"`{self.name}`: tensor of shape {list(shape)} does not fit the {list(self.qparams_shape)} "
                        f"blocks fixed by the plan shape {list(self.shape)}"
                    )
                out += (n, b)
        return out

    def view(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """``x`` in the layout qparams broadcast against, and the broadcast shape of the qparams."""
        if self.block is None:
            return x, self.bshape
        vshape = self.view_shape(x.shape)
        return x.reshape(vshape), block_bshape(vshape)

    def describe(self) -> str:
        if self.axis is not None and self.granularity == "per_channel":
            return f"{self.granularity}(axis={self.axis})"
        if self.block is not None:
            return f"{self.granularity}(qparams={list(self.qparams_shape)})"
        return self.granularity
