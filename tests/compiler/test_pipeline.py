"""The pipeline's pass contracts: each pass names the tables it reads and writes, returns a new
state, and leaves the state it was given unchanged."""

import importlib
import re

import pytest

from qplan.compiler.inventory import Inventory
from qplan.compiler.pipeline import PASSES, Pass, run_passes
from qplan.compiler.state import TABLES, State
from qplan.schema.types import QuantizerConfig


@pytest.mark.parametrize("p", PASSES, ids=lambda p: p.name)
def test_a_pass_touches_only_the_tables_its_contract_names(p: Pass) -> None:
    source = importlib.import_module(p.run.__module__).__loader__.get_source(p.run.__module__)
    used = set(re.findall(r"\bstate\.(\w+)", source)) & TABLES
    assert used <= set(p.reads) | set(p.writes), p.name


def test_every_table_is_written_by_some_pass() -> None:
    assert set().union(*(p.writes for p in PASSES)) == TABLES


def _state() -> State:
    inventory = Inventory(model_class="M", mode="eager", modules=(), parameters={}, ops=(), inputs=(), outputs=())
    return State(inventory=inventory, config=QuantizerConfig())


def _grows_input(state: State) -> State:
    state.fused["x"] = "f0"
    return state


def _writes_unlisted(state: State) -> State:
    return state.evolve(fused={"x": "f0"})


@pytest.mark.parametrize("run", [_grows_input, _writes_unlisted])
def test_run_passes_rejects_a_pass_that_breaks_its_contract(run) -> None:
    with pytest.raises(AssertionError, match=run.__name__):
        run_passes(_state(), [Pass(run, reads=(), writes=("reads",))])


def test_evolve_leaves_the_old_state_alone_and_rejects_unknown_tables() -> None:
    old = _state()
    new = old.evolve(fused={"a": "f0"})
    assert old.fused == {} and new.fused == {"a": "f0"} and new.inventory is old.inventory
    with pytest.raises(TypeError, match="`inventory`"):
        old.evolve(inventory=None)
