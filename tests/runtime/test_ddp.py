"""Observers under DistributedDataParallel: two CPU ranks (gloo, localhost) with different data end with
identical qparams and weights, after QAT steps and after PTQ calibration (eval mode) alike (SPEC §4)."""

from __future__ import annotations

import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from qplan import models
from qplan.compiler.plan import ResolvedSpec
from qplan.runtime.fake_quant import make_fake_quantize
from qplan.runtime.quantizer import Quantizer
from qplan.schema.types import QuantizerConfig

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


def _init(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=__import__("datetime").timedelta(seconds=60))


def _worker(rank: int, port: int, out_dir: str) -> None:
    _init(rank, port)
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


def _calibrated_state(rank: int, mode: str) -> dict[str, torch.Tensor]:
    """PTQ: prepare the bundled MLP, calibrate it on this rank's data in `calibration_mode()` (eval)."""
    torch.manual_seed(0)
    model, args = models.mlp(n_layers=2)
    q = Quantizer(model, QuantizerConfig.presets.w8a8().set_execution_mode(mode))
    p = q.prepare(args)
    q.calibration_mode()
    assert not p.training
    with torch.no_grad():
        for step in range(STEPS):
            g = torch.Generator().manual_seed(1000 * rank + step)
            p(torch.randn(args[0].shape, generator=g) * (1 + 3 * rank))
    out: dict[str, torch.Tensor] = {}
    for name, fq in q.fake_quants.items():
        out.update({f"{name}.{k}": v.detach().clone() for k, v in fq.state_dict().items()})
    return out


def _calibration_worker(rank: int, port: int, out_dir: str, mode: str) -> None:
    _init(rank, port)
    try:
        torch.save(_calibrated_state(rank, mode), os.path.join(out_dir, f"calib{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(worker, *args) -> None:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is unavailable")
    ctx = mp.start_processes(worker, args=(_free_port(), *args), nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                if p.is_alive():
                    p.kill()
            pytest.fail(f"DDP workers did not finish within {TIMEOUT_S}s")


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_ddp_ranks_agree_on_qparams_after_calibration(mode: str, tmp_path):
    """`calibration_mode()` puts the model in eval mode; observers still reduce ranges across ranks."""
    _spawn(_calibration_worker, str(tmp_path), mode)
    states = [torch.load(tmp_path / f"calib{r}.pt") for r in range(WORLD)]
    assert states[0].keys() == states[1].keys()
    scales = [k for k in states[0] if k.endswith(".scale")]
    assert scales
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), f"`{key}` differs across ranks"
    # rank 0 calibrated alone holds other activation qparams: the ranks did reduce their ranges
    alone = _calibrated_state(0, mode)
    assert any(not torch.equal(alone[k], states[0][k]) for k in scales)


def test_ddp_ranks_agree_on_qparams(tmp_path):
    _spawn(_worker, str(tmp_path))
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
