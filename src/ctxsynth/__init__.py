"""ctxsynth: long-context instruction-tuning data by context synthesis.

Seed instruction-answer pairs -> an LLM writes the missing background document -> verification ->
assembly to exact token budgets -> SFT exports -> training -> evaluation. See README.md; the
Python API (`ctxsynth.Pipeline`, docs/api.md) is imported on first use, so `import ctxsynth` stays light.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Pipeline", "RunConfig", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Pipeline", "RunConfig"):
        from ctxsynth.pipeline import api

        return getattr(api, name)
    raise AttributeError(f"module 'ctxsynth' has no attribute {name!r}")
