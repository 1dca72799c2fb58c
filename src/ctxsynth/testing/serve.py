"""`python -m ctxsynth.testing.serve`: the test server as a process of its own.

An echo server to try a client by hand (`--port 8000`), or, with `--fault-rate`, `--bursts` and
`--overload-above`, the faulty or overloaded server that benchmarks/client.py measures against. The
first line printed is the URL; `GET /_stats` and `POST /_stats/reset` read and reset its counters.
"""

from __future__ import annotations

import argparse

from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.scripting import (
    FAULT_KINDS,
    FaultRule,
    Responder,
    echo_responder,
    random_faults,
    rate_limit_bursts,
)


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C: the echo responder by hand, or a fault-injecting server for benchmarks."""
    parser = argparse.ArgumentParser(description="OpenAI-compatible test server (echo, faults on request)")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before each reply")
    parser.add_argument("--model", default="test-model")
    parser.add_argument("--responder", choices=("echo", "context"), default="echo",
                        help="context: write a context-synthesis document (ctxsynth.testing.responders)")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of attempts given a fault")
    parser.add_argument("--fault-seed", type=int, default=0, help="faults are a function of this seed and the request")
    parser.add_argument("--fault-kinds", default=",".join(FAULT_KINDS), help="comma list, equal shares")
    parser.add_argument("--stall-s", type=float, default=30.0, help="how long a stall fault says nothing")
    parser.add_argument("--bursts", default="", help="EVERY:LENGTH: 429 for LENGTH of every EVERY arrivals")
    parser.add_argument("--overload-above", type=int, default=None, help="429 when more are in flight")
    args = parser.parse_args(argv)
    rules: list[FaultRule] = []
    if args.fault_rate > 0:
        rules.append(random_faults(args.fault_rate, args.fault_seed, kinds=tuple(args.fault_kinds.split(",")),
                                   stall_s=args.stall_s))
    if args.bursts:
        every, length = (int(x) for x in args.bursts.split(":"))
        rules.append(rate_limit_bursts(every, length))
    responder: Responder = echo_responder
    if args.responder == "context":
        from ctxsynth.testing.responders import context_writer
        responder = context_writer
    server = OpenAIServer(responder, fault_rule=_first_fault(rules) if rules else None, latency_s=args.latency,
                          model=args.model, host=args.host, port=args.port, overload_above=args.overload_above,
                          keep_records=False)
    print(f"serving {server.url} (Ctrl-C stops)", flush=True)  # noqa: T201 - this is the CLI
    server.serve_forever()


def _first_fault(rules: list[FaultRule]) -> FaultRule:
    return lambda hit: next((f for rule in rules if (f := rule(hit)) is not None), None)


if __name__ == "__main__":
    main()
