"""The package's top level: the public names, and which of them import torch."""

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_qplan_does_not_import_torch() -> None:
    run = _run("import sys, qplan; qplan.QuantizerConfig(); assert 'torch' not in sys.modules, 'torch imported'")
    assert run.returncode == 0, run.stderr


def test_entry_points_resolve_lazily_to_their_stage() -> None:
    run = _run(
        "import sys, qplan\n"
        "from qplan import Quantizer, compile_plan, load_plan, load_program\n"
        "assert 'torch' in sys.modules\n"
        "assert Quantizer.__module__.startswith('qplan.runtime'), Quantizer.__module__\n"
        "assert compile_plan.__module__.startswith('qplan.compiler'), compile_plan.__module__\n"
        "assert load_plan.__module__.startswith('qplan.compiler'), load_plan.__module__\n"
        "assert load_program.__module__.startswith('qplan.runtime'), load_program.__module__\n"
    )
    assert run.returncode == 0, run.stderr


def test_unknown_attribute_is_an_attribute_error() -> None:
    run = _run("import qplan\ntry:\n    qplan.nope\nexcept AttributeError as e:\n    print(e)\n")
    assert run.returncode == 0 and "no attribute 'nope'" in run.stdout, run.stderr


def test_version_matches_the_installed_metadata() -> None:
    from importlib.metadata import version

    import qplan

    assert qplan.__version__ == version("qplan")
