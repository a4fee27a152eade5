"""Output containers of model libraries that `torch.export` must be able to flatten.

A transformers model returns its key/value cache (``DynamicCache``) inside its output by default
(``use_cache=True``); `torch.export` refuses outputs whose types it cannot flatten. transformers
ships the flattening for its cache classes, and this module registers it whenever a model to be
captured, prepared or finalized comes from transformers, so models export with their default
settings. The registration is process-wide and idempotent; `load_program` repeats it for the
libraries a saved program names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch.fx._pytree as fx_pytree
import torch.utils._pytree as pytree
from torch import nn

__all__ = ["LIBRARIES", "libraries_of", "register_output_types"]


def _transformers() -> None:
    module = importlib.import_module("transformers.integrations.executorch")
    register: Callable[[], None] | None = getattr(module, "register_dynamic_cache_export_support", None)
    if register is not None:
        register()  # DynamicCache, by transformers itself
    _register_encoder_decoder_cache()


def _register_encoder_decoder_cache() -> None:
    """`EncoderDecoderCache` (BART, T5, Whisper, ...) holds two `DynamicCache`s: flatten it into
    them, so export sees the tensors through transformers' own DynamicCache flattening."""
    cache_utils = importlib.import_module("transformers.cache_utils")
    cls = getattr(cache_utils, "EncoderDecoderCache", None)
    if cls is None or cls in pytree.SUPPORTED_NODES:
        return

    def children(cache: Any) -> list[Any]:
        return [cache.self_attention_cache, cache.cross_attention_cache]

    pytree.register_pytree_node(
        cls,
        lambda cache: (children(cache), None),
        lambda values, _: cls(*values),
        serialized_type_name=f"{cls.__module__}.{cls.__name__}",
        flatten_with_keys_fn=lambda cache: (
            [(pytree.GetAttrKey(name), c) for name, c in zip(_EDC_FIELDS, children(cache), strict=True)],
            None,
        ),
    )
    fx_pytree.register_pytree_flatten_spec(cls, lambda cache, spec: children(cache))


_EDC_FIELDS = ("self_attention_cache", "cross_attention_cache")


#: library (top-level package of a model's classes) -> the registration its outputs need
LIBRARIES: dict[str, Callable[[], None]] = {"transformers": _transformers}
_done: set[str] = set()


def libraries_of(model: nn.Module) -> list[str]:
    """The known libraries whose classes `model` is built from, sorted."""
    found = {type(m).__module__.partition(".")[0] for m in model.modules()}
    return sorted(found & LIBRARIES.keys())


def register_output_types(libraries: list[str]) -> None:
    """Register the output flattening of each library in `libraries` (once per process)."""
    for name in libraries:
        if name in LIBRARIES and name not in _done:
            LIBRARIES[name]()
            _done.add(name)
