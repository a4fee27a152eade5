"""QAT under FSDP2 (`torch.distributed.fsdp.fully_shard`) on two CPU ranks (gloo, localhost).

A tiny random-weight transformers Llama (default attention) is prepared on each rank, sharded with
`fully_shard`, trained for a few QAT steps on different data per rank, and checkpointed with
`torch.distributed.checkpoint`. The test then checks, in this process, that every fake-quant buffer
is identical on both ranks, and that the checkpoint restores into a model prepared in one process,
which finalizes to a program computing what rank 0's sharded model computed.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

pytest.importorskip("transformers")

from tiny_llama import Logits, ids, tiny_llama

WORLD = 2
STEPS = 3
TIMEOUT_S = 300
MODES = ("graph", "eager")


def tiny_logits() -> tuple[nn.Module, tuple[torch.Tensor]]:
    model = Logits(tiny_llama())
    return model, (_ids(0, batch=2),)


def _ids(seed: int, batch: int = 2, seq: int = 8) -> torch.Tensor:
    return ids(batch, seq, seed)


def _config(mode: str):
    from qplan import QuantizerConfig

    return QuantizerConfig().set_execution_mode(mode)


def _train_sharded(rank: int, mode: str, out: Path) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict
    from torch.distributed.fsdp import fully_shard

    from qplan import Quantizer

    model, example = tiny_logits()
    q = Quantizer(model, _config(mode))
    prepared = q.prepare(example)
    with torch.no_grad():  # a short calibration on each rank's own data before QAT
        q.calibration_mode()
        prepared(_ids(10 + rank))
    fully_shard(prepared)
    q.training_mode()
    opt = torch.optim.SGD(prepared.parameters(), lr=0.05)
    for step in range(STEPS):
        opt.zero_grad()
        prepared(_ids(100 * (rank + 1) + step)).square().mean().backward()
        opt.step()
        q.step()
    buffers = {k: v.detach().clone() for k, v in prepared.named_buffers()}
    torch.save(buffers, out / f"{mode}-buffers{rank}.pt")
    q.inference_mode()
    with torch.no_grad():
        reference = prepared(_ids(7)).detach().clone()
    torch.save(reference, out / f"{mode}-reference{rank}.pt")
    dcp.save(get_model_state_dict(prepared), checkpoint_id=str(out / f"{mode}-ckpt"))


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=120))
    try:
        for mode in MODES:
            _train_sharded(rank, mode, Path(out_dir))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.fail("torch.distributed with gloo is unavailable on this torch build")
    out = tmp_path_factory.mktemp("fsdp2")
    ctx = mp.start_processes(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                if p.is_alive():
                    p.kill()
            pytest.fail(f"FSDP2 workers did not finish in {TIMEOUT_S} s")
    return out


@pytest.mark.parametrize("mode", MODES)
def test_ranks_hold_identical_fake_quant_state(trained: Path, mode: str) -> None:
    b0 = torch.load(trained / f"{mode}-buffers0.pt")
    b1 = torch.load(trained / f"{mode}-buffers1.pt")
    assert b0.keys() == b1.keys() and len(b0) > 50
    differ = [k for k in b0 if not torch.equal(b0[k], b1[k])]
    assert not differ, f"{len(differ)} buffers differ between ranks, e.g. {differ[:3]}"
    # the ranks trained on different data: equal qparams come from the range sync, not from equal inputs
    r0 = torch.load(trained / f"{mode}-reference0.pt")
    r1 = torch.load(trained / f"{mode}-reference1.pt")
    torch.testing.assert_close(r0, r1, rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled:UserWarning")
@pytest.mark.parametrize("mode", MODES)
def test_checkpoint_restores_in_one_process_and_finalizes(trained: Path, mode: str) -> None:
    import torch.distributed.checkpoint as dcp

    from qplan import Quantizer

    model, example = tiny_logits()
    q = Quantizer(model, _config(mode))
    prepared = q.prepare(example)
    state = prepared.state_dict()
    before = {k: v.clone() for k, v in state.items()}
    dcp.load(state, checkpoint_id=str(trained / f"{mode}-ckpt"))
    prepared.load_state_dict(state)
    changed = [k for k in state if not torch.equal(before[k], state[k])]
    assert any(".weight" in k for k in changed) and any(k not in dict(prepared.named_parameters()) for k in changed)

    q.inference_mode()
    reference = torch.load(trained / f"{mode}-reference0.pt")
    with torch.no_grad():
        torch.testing.assert_close(prepared(_ids(7)), reference, rtol=0, atol=1e-5)
    program = q.finalize()
    with torch.no_grad():
        out = program.module()(_ids(7))
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-4)
