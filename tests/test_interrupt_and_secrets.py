"""Ctrl-C says how to resume and exits 130; credentials in base_url reach neither config.yaml nor
the terminal, even under -v (issue 14 item 4), against the real local server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.responders import context_writer
from ctxsynth.testing.scripting import Reply


def _slow_writer(body: dict) -> Reply:
    time.sleep(0.3)
    return context_writer(body)


def _config(tmp_path: Path, url: str, n: int) -> Path:
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(
        {"id": f"s{i}", "instruction": f"Who founded settlement number {i}?", "answer": f"Founder {i}"}) + "\n"
        for i in range(n)))
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({
        "name": "r", "out_dir": "runs", "stages": ["seeds", "synthesize"],
        "seeds": {"source": "jsonl", "path": "seeds.jsonl"},
        "llm": {"backend": "openai", "model": "test-model", "max_tokens": 512,
                "options": {"base_url": url, "max_concurrency": 2}},
        "synth": {"target_words": 80}}))
    return path


def test_ctrl_c_says_how_to_resume_exits_130_and_the_rerun_finishes(tmp_path: Path) -> None:
    # replies wait until Ctrl-C has been sent: on a loaded machine the run could otherwise finish
    # before the signal arrives (CI saw that once with 0.3 s replies and exit code 0)
    interrupted = threading.Event()

    def gated_writer(body: dict) -> Reply:
        interrupted.wait(60)
        return _slow_writer(body)

    with OpenAIServer(gated_writer) as server:
        config = _config(tmp_path, server.url, 12)
        cmd = [sys.executable, "-m", "ctxsynth.cli", "run", str(config)]
        # Ctrl-C as a terminal delivers it: the child starts with SIGINT's default action even when this
        # test runs with SIGINT ignored (a shell's background job without job control, nohup ... &)
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.time() + 60
        while server.hits < 2 and time.time() < deadline:  # requests in flight: the run is mid-stage
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        interrupted.set()
        assert proc.returncode == 130, err
        assert "interrupted; rerun the same command to resume" in " ".join(err.split())
        assert "Traceback" not in err
        assert not (tmp_path / "runs" / "r" / "_state" / "synthesize" / "DONE").exists()
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs" / "r" / "_state" / "synthesize" / "DONE").exists()


def test_base_url_credentials_reach_neither_config_yaml_nor_the_terminal(tmp_path: Path) -> None:
    with OpenAIServer(context_writer) as server:
        url = server.url.replace("http://", "http://alice:hunter2@") + "?api_key=hunter2"
        config = _config(tmp_path, url, 2)
        proc = subprocess.run([sys.executable, "-m", "ctxsynth.cli", "run", str(config), "-v"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
    saved = (tmp_path / "runs" / "r" / "config.yaml").read_text()
    assert "hunter2" not in saved and "alice" not in saved and "***@127.0.0.1" in saved
    assert "hunter2" not in proc.stdout + proc.stderr
