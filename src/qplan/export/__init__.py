"""Deployable output: write a prepared model in formats other tools load.

:mod:`qplan.export.compressed_tensors` writes a Hugging Face model directory in the compressed-tensors
format (vLLM, llm-compressor) and maps a compressed-tensors ``quantization_config`` back to a qplan
config. The package sits above :mod:`qplan.runtime` (it reads a prepared :class:`~qplan.runtime.Quantizer`)
and below :mod:`qplan.cli`; optional third-party packages are imported on first use.
"""

from __future__ import annotations

__all__: list[str] = []
