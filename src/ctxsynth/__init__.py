"""ctxsynth: long-context instruction-tuning data by context synthesis.

Seed instruction-answer pairs -> an LLM writes the missing background document -> verification ->
assembly to exact token budgets -> SFT exports -> training -> evaluation. See README.md.
"""

__version__ = "0.1.0"
