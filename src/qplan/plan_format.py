"""The plan file's identity: the ``format`` and ``version`` fields every plan carries.

A leaf module, so that the schema stage (which must recognise a plan given where a config was
expected) and the compiler (which writes plans) can both read it without importing each other.
"""

__all__ = ["PLAN_FORMAT", "PLAN_VERSION", "PLAN_KEYS", "looks_like_plan"]

PLAN_FORMAT = "qplan.plan"
PLAN_VERSION = 1

PLAN_KEYS = frozenset({"format", "version", "mode", "model", "config", "specs", "quantizers", "decisions"})
"""Top-level keys of a plan (none of them is a config key)."""


def looks_like_plan(document: object) -> bool:
    """Whether a decoded JSON/YAML document is meant as a plan: an object with a ``format`` or at
    least two plan keys, and no ``quantization_config``. Its format may still be foreign; the plan
    loader says so."""
    if not isinstance(document, dict) or "quantization_config" in document:
        return False
    return "format" in document or len(PLAN_KEYS.intersection(document)) >= 2
