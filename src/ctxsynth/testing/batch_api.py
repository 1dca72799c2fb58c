"""The Batch API side of the test server: `POST /v1/files`, `GET /v1/files/{id}/content`,
`POST /v1/batches`, `GET /v1/batches/{id}`. Each batch line goes through the server's responder in a
background thread, after `batch_delay_s`; `batch_answer_limit` answers only that many lines and then
lets the batch expire. Output lines come back reversed, so clients must match them by custom_id.
"""

from __future__ import annotations

import email.parser
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from ctxsynth.testing.scripting import Reply, completion_body


class BatchAPI:
    """Mixed into OpenAIServer, which sets these attributes and owns the lock and the responder."""

    model: str
    batch_delay_s: float
    batch_answer_limit: int | None
    batch_lines_answered: int
    _lock: threading.Lock
    _stopping: threading.Event
    _files: dict[str, dict[str, Any]]
    _batches: dict[str, dict[str, Any]]

    _respond: Callable[[dict[str, Any]], Reply]

    def _add_file(self, content: bytes, filename: str, purpose: str) -> dict[str, Any]:
        with self._lock:
            file_id = f"file-{len(self._files) + 1}"
            self._files[file_id] = {"content": content, "filename": filename, "purpose": purpose}
        return {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed"}

    def batch_ids(self) -> list[str]:
        with self._lock:
            return list(self._batches)

    def _start_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            batch_id = f"batch-{len(self._batches) + 1}"
            self._batches[batch_id] = {
                "id": batch_id, "object": "batch", "endpoint": body.get("endpoint", "/v1/chat/completions"),
                "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window", "24h"),
                "status": "validating", "created_at": int(time.time()), "output_file_id": None,
                "error_file_id": None, "metadata": body.get("metadata"),
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
            }
        threading.Thread(target=self._run_batch, args=(batch_id,), daemon=True, name=f"batch {batch_id}").start()
        return self._batch_view(batch_id)

    def _batch_view(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self._batches[batch_id]))

    def _run_batch(self, batch_id: str) -> None:
        """Answer each line with the responder; write the output and error files; finish the batch."""
        with self._lock:
            batch = self._batches[batch_id]
            lines = [json.loads(line) for line in self._files[batch["input_file_id"]]["content"].splitlines() if line.strip()]
            batch["status"], batch["request_counts"]["total"] = "in_progress", len(lines)
        if self._stopping.wait(self.batch_delay_s):
            return
        out, errors = [], []
        for n, line in enumerate(lines):
            if self.batch_answer_limit is not None and n >= self.batch_answer_limit:
                break  # the rest "expires" unanswered, as a batch past its completion window does
            try:
                body = completion_body(self.model, self._respond(line["body"]), line["body"])
                out.append({"id": f"resp-{n}", "custom_id": line["custom_id"], "error": None,
                            "response": {"status_code": 200, "request_id": f"req-{n}", "body": body}})
            except Exception as exc:  # the responder refused this line: an error-file entry
                errors.append({"id": f"resp-{n}", "custom_id": line["custom_id"], "response": None,
                               "error": {"code": "server_error", "message": str(exc)}})
            with self._lock:
                self.batch_lines_answered += 1
        # the API promises no order: lines come back reversed, so clients must match by custom_id
        encode = lambda rows: "".join(json.dumps(r) + "\n" for r in reversed(rows)).encode()  # noqa: E731
        output = self._add_file(encode(out), f"{batch_id}_output.jsonl", "batch_output")["id"] if out else None
        error = self._add_file(encode(errors), f"{batch_id}_errors.jsonl", "batch_output")["id"] if errors else None
        with self._lock:
            batch.update(output_file_id=output, error_file_id=error,
                         status="expired" if len(out) + len(errors) < len(lines) else "completed",
                         request_counts={"total": len(lines), "completed": len(out), "failed": len(errors)})


def upload(handler: Any, raw: bytes) -> None:
    """POST /v1/files, multipart/form-data with `purpose` and `file` (what the openai client sends)."""
    self = handler
    header = f"Content-Type: {self.headers.get('Content-Type', '')}\r\n\r\n".encode()
    message = email.parser.BytesParser().parsebytes(header + raw)
    parts: list[Any] = message.get_payload() if message.is_multipart() else []  # type: ignore[assignment]
    fields: dict[str, Any] = {part.get_param("name", header="content-disposition"): part for part in parts or []}
    if "file" not in fields:
        self._send_json(400, {"error": {"message": "multipart field 'file' missing", "type": "invalid_request_error"}})
        return
    purpose = (fields["purpose"].get_payload(decode=True) or b"").decode() if "purpose" in fields else ""
    filename = fields["file"].get_filename() or "upload.jsonl"
    self._send_json(200, self.server.app._add_file(fields["file"].get_payload(decode=True) or b"", filename, purpose))


def create_batch(handler: Any, raw: bytes) -> None:
    """POST /v1/batches: start answering an uploaded file's lines in the background."""
    self = handler
    app = self.server.app
    try:
        body = json.loads(raw)
        if body.get("input_file_id") not in app._files:
            raise ValueError(f"no file {body.get('input_file_id')!r}")
    except (ValueError, AttributeError) as exc:
        self._send_json(400, {"error": {"message": f"bad request: {exc}", "type": "invalid_request_error"}})
        return
    self._send_json(200, app._start_batch(body))
