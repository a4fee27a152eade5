"""Observers under DistributedDataParallel: two CPU ranks (gloo, localhost) with different data end with
identical qparams and weights."""

from __future__ import annotations

import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from qplan.compiler.plan import ResolvedSpec
from qplan.runtime.fake_quant import make_fake_quantize

WORLD = 2
STEPS = 4
TIMEOUT_S = 120


def _spec(**kw) -> ResolvedSpec:
    base = dict(
        dtype="int8",
        qscheme="symmetric",
        qformulation="zp",
        granularity="per_tensor",
        qparam_calculator="moving_average",
    )
    base.update(kw)
    return ResolvedSpec(**base)


class _QLinear(nn.Module):
    """A linear layer with fake-quantized input (global min/max), weight (per channel) and output (EMA)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 6)
        self.fq_in = make_fake_quantize(
            _spec(qscheme="asymmetric", qparam_calculator="global_minmax"), (4, 8), "fc:in0"
        )
        self.fq_w = make_fake_quantize(
            _spec(granularity="per_channel", axis=0, qparam_calculator="static"), (6, 8), "fc.weight", role="state"
        )
        self.fq_out = make_fake_quantize(_spec(), (4, 6), "fc:out0")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fq_out(nn.functional.linear(self.fq_in(x), self.fq_w(self.fc.weight), self.fc.bias))


def _batch(rank: int, step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 * rank + step)
    return torch.randn(4, 8, generator=g) * (1 + 3 * rank)  # rank 1 sees a much wider range


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=__import__("datetime").timedelta(seconds=60))
    try:
        torch.manual_seed(0)
        model = nn.parallel.DistributedDataParallel(_QLinear())
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in range(STEPS):
            opt.zero_grad()
            model(_batch(rank, step)).square().mean().backward()
            opt.step()
        torch.save(
            {k: v.detach().clone() for k, v in model.module.state_dict().items()},
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_ranks_agree_on_qparams(tmp_path):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is unavailable")
    ctx = mp.start_processes(
        _worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                if p.is_alive():
                    p.kill()
            pytest.fail(f"DDP workers did not finish within {TIMEOUT_S}s")
    states = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), f"`{key}` differs across ranks"
    # the input observer holds the global range over both ranks' data, not either rank's own
    batches = torch.stack([_batch(r, s) for r in range(WORLD) for s in range(STEPS)])
    lo, hi = batches.min().clamp(max=0), batches.max().clamp(min=0)
    local_hi = torch.stack([_batch(0, s) for s in range(STEPS)]).max()
    assert local_hi < hi  # rank 0's own data alone would give a different range
    bounds = states[0]["fq_in.bounds"]
    assert bounds[0].item() == -lo.item() and bounds[1].item() == hi.item()
    torch.testing.assert_close(states[0]["fq_in.scale"], (hi - lo) / 255)
