"""`Verdict`: what every filter says about one record: keep, or drop with a reason.

Filters answer in batches (`check(records) -> list[Verdict]`, one verdict per record, in order) so
model-backed filters can send all their requests at once. A dropped record's `reason` becomes its
rejection reason in rejected/ and a `dropped_<reason>` stat; `scores` keep the measured values,
for kept records too, so a reader can see how close a call was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Verdict:
    keep: bool
    reason: str | None = None  # set exactly when keep is False
    detail: str = ""
    scores: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.keep == (self.reason is not None):
            raise ValueError("a Verdict has a reason exactly when it drops the record")

    @classmethod
    def kept(cls, detail: str = "", **scores: Any) -> Verdict:
        return cls(True, None, detail, scores)

    @classmethod
    def drop(cls, reason: str, detail: str = "", **scores: Any) -> Verdict:
        return cls(False, reason, detail, scores)
