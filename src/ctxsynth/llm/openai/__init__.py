"""The OpenAI protocol: the streaming chat backend (`backend`), the Batch API backend (`batch`), the
reply and failure mapping they share (`replies`), the direct send path (`direct`) and the endpoint
probe preflight runs (`probe`). The backends register by name in ctxsynth.llm.BACKENDS."""
