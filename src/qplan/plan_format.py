"""The plan file's identity: the ``format`` and ``version`` fields every plan carries.

A leaf module, so that the schema stage (which must recognise a plan given where a config was
expected) and the compiler (which writes plans) can both read it without importing each other.
"""

__all__ = ["PLAN_FORMAT", "PLAN_VERSION"]

PLAN_FORMAT = "qplan.plan"
PLAN_VERSION = 1
