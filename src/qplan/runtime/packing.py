"""Sub-byte weight storage: int4/uint4 two codes per byte, int2/uint2 four per byte.

Codes are packed along the last dimension, padded with zeros to a whole byte: element ``k·i + j``
(``k`` = codes per byte) sits in bits ``[b·j, b·(j+1))`` of byte ``i`` (the first element in the low
bits, as for qplan's packed fp4). Signed codes are stored in two's complement and sign-extended on
unpacking. :func:`unpack_codes` is plain integer tensor arithmetic in Core ATen ops, so it traces into an
exported program (and ExecuTorch's edge dialect) and reproduces the stored codes exactly.
"""

from __future__ import annotations

import torch

from qplan.runtime.qformats import INT_BITS

__all__ = ["packed_bits", "pack_codes", "unpack_codes"]


def packed_bits(dtype_name: str) -> int | None:
    """The bits per code when a weight of this qplan dtype is stored packed (4 or 2), else None."""
    bits = INT_BITS.get(dtype_name)
    return bits if bits in (2, 4) else None


def pack_codes(q: torch.Tensor, bits: int) -> torch.Tensor:
    """``q`` (int8 or uint8 codes that fit in `bits`) packed into uint8 along its last dimension."""
    per = 8 // bits
    n = q.shape[-1]
    padded = torch.nn.functional.pad(q.to(torch.int16), (0, -n % per))
    nibbles = (padded & ((1 << bits) - 1)).reshape(*q.shape[:-1], -1, per)
    shifts = torch.arange(0, 8, bits, dtype=torch.int16)
    return (nibbles << shifts).sum(-1).to(torch.uint8)


def unpack_codes(packed: torch.Tensor, bits: int, n: int, signed: bool) -> torch.Tensor:
    """The codes :func:`pack_codes` packed: last dimension `n`, int8 when `signed`, else uint8.

    Only Core ATen ops (floor division by powers of two, ``bitwise_and``/``xor``, ``sub``), so
    ExecuTorch's edge dialect accepts the program; sign extension is ``(c ^ h) - h`` with ``h = 2^(b-1)``.
    """
    divisors = torch.tensor([1 << s for s in range(0, 8, bits)], dtype=torch.uint8, device=packed.device)
    codes = torch.bitwise_and(torch.div(packed.unsqueeze(-1), divisors, rounding_mode="floor"), (1 << bits) - 1)
    if signed:
        half = 1 << (bits - 1)
        codes = torch.bitwise_xor(codes, half).to(torch.int8) - half
    codes = codes.reshape(*packed.shape[:-1], -1)
    return codes if codes.shape[-1] == n else codes[..., :n]
