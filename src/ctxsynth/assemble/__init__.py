"""Assembly stage: verified synthetic contexts + distractors -> chat samples at exact token budgets."""

from ctxsynth.assemble.assembler import Assembler
from ctxsynth.assemble.config import AssembleConfig

__all__ = ["AssembleConfig", "Assembler"]
