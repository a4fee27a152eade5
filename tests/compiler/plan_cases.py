"""Runner for the YAML case files in tests/compiler/fixtures/: a config, a hand-built model and
the plan fragment expected for it, checked fact by fact.

A case::

    - name: what the case shows
      model: nested            # a builder of inventories.MODELS (args: model_args)
      config: |                # the whole config document
        quantization_config: ...
      strict: false
      expect:                  # address -> facts that must hold for the fake-quant at that address
        enc.l0.weight: {role: state, spec: {dtype: int4, axis: 0}, readers: [enc.l0.linear:weight],
                        rule: 'quantization_config...', beaten: [...], at: case.yaml:5}
      absent: [addresses with no fake-quant]
      diagnostics: {code: count}   # exact counts of these codes (others may exist unless `only`)
      decisions: {kind: count}
      reasons: {kind: substring of some decision's reason}
      messages: [substring of some diagnostic's message or help]
      count: total number of fake-quants
      error: code               # compile must fail with a diagnostic of this code
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from inventories import MODELS
from ruamel.yaml import YAML

from qplan.compiler import compile_inventory
from qplan.compiler.state import State
from qplan.diagnostics import CompileError
from qplan.schema.loader import load_config

FIXTURES = Path(__file__).parent / "fixtures"


def load_cases(name: str) -> list:
    cases = YAML(typ="safe", pure=True).load((FIXTURES / f"{name}.yaml").read_text())  # YAML 1.2 (`a:b` in flow)
    return [pytest.param(c, id=c["name"]) for c in cases]


def compile_case(case: dict):
    inventory = MODELS[case["model"]](**case.get("model_args", {}))
    loaded = load_config(case["config"], name="case.yaml")
    return compile_inventory(inventory, loaded, strict=case.get("strict", False), check=State.lint)


def check_case(case: dict) -> None:
    if "error" in case:
        with pytest.raises(CompileError) as info:
            compile_case(case)
        codes = [d.code for d in info.value.diagnostics if d.level == "error"]
        assert case["error"] in codes, codes
        if "message" in case:
            assert any(case["message"] in d.message for d in info.value.diagnostics), info.value
        return
    plan = compile_case(case)
    by_address = plan.by_address()
    for address, facts in (case.get("expect") or {}).items():
        assert address in by_address, f"no fake-quant at `{address}`; have {sorted(by_address)}"
        q = by_address[address]
        for key, want in facts.items():
            if key == "spec":
                got = msgspec.json.decode(msgspec.json.encode(plan.specs[q.spec]))
                for k, v in want.items():
                    assert got[k] == v, f"{address}: spec.{k} is {got[k]!r}, expected {v!r}"
            elif key in ("rule", "at", "beaten", "defaulted"):
                got = getattr(q.provenance, "source" if key == "at" else key)
                got = list(got) if isinstance(got, tuple) else got
                assert got == want, f"{address}: provenance.{key} is {got!r}, expected {want!r}"
            elif key == "grouped":
                assert (q.group is not None) == want, f"{address}: group is {q.group!r}"
            else:
                got = getattr(q, key)
                got = list(got) if isinstance(got, tuple) else got
                assert got == want, f"{address}: {key} is {got!r}, expected {want!r}"
    for address in case.get("absent") or ():
        assert address not in by_address, f"unexpected fake-quant at `{address}`"
        assert all(address not in q.readers for q in plan.quantizers), f"`{address}` reads a fake-quant"
    if "count" in case:
        assert len(plan.quantizers) == case["count"], [q.address for q in plan.quantizers]
    for code, n in (case.get("diagnostics") or {}).items():
        got = [d for d in plan.diagnostics if d.code == code]
        assert len(got) == n, f"{code}: {[d.concise() for d in plan.diagnostics]}"
    for kind, n in (case.get("decisions") or {}).items():
        got = [d for d in plan.decisions if d.kind == kind]
        assert len(got) == n, f"{kind}: {[(d.kind, d.subjects) for d in plan.decisions]}"
    for kind, needle in (case.get("reasons") or {}).items():
        assert any(needle in d.reason for d in plan.decisions if d.kind == kind), [
            d.reason for d in plan.decisions if d.kind == kind
        ]
    for needle in case.get("messages") or ():
        assert any(needle in (d.message + " " + (d.help or "")) for d in plan.diagnostics), [
            d.concise() for d in plan.diagnostics
        ]
