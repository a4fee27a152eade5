"""The plan file's identity: the ``format`` and ``version`` fields every plan carries.

A leaf module, so that the schema stage (which must recognise a plan given where a config was
expected) and the compiler (which writes plans) can both read it without importing each other.
"""

__all__ = ["PLAN_FORMAT", "PLAN_VERSION", "looks_like_plan"]

PLAN_FORMAT = "qplan.plan"
PLAN_VERSION = 1


def looks_like_plan(document: object) -> bool:
    """Whether a decoded JSON/YAML document is meant as a plan: an object with no
    ``quantization_config`` and either a ``format`` key or both ``specs`` and ``quantizers``. Its
    format may still be foreign or its version unknown; the plan loader says so."""
    if not isinstance(document, dict) or "quantization_config" in document:
        return False
    return "format" in document or ("specs" in document and "quantizers" in document)
