"""A small OpenAI-compatible server for the judge's tests: POST /v1/chat/completions answered as
OpenAI's API reference documents the chat completion object (id, object, created, model, choices
with message and finish_reason, usage, system_fingerprint), the rest 404.

It judges as a rubric-following judge would, from the prompt alone: HELMET's LongQA prompt gets
fluency 1 and correctness 3 when the parsed answer is among the correct answers, else 1; its Summ
prompts get fluency 1, one supported key point, and precision 1 of 2 sentences. Each request's
model and prompt are recorded."""
from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def judgement(prompt: str) -> str:
    if "Correct answers:" in prompt:  # scripts/eval_gpt4_longqa.py
        answers = prompt.split("Correct answers:")[1].split("\nAnswer:")[0]
        answer = prompt.rsplit("\nAnswer:", 1)[1].strip()
        correct = 3 if answer and answer in answers else 1
        return f'The answer is judged against the correct answers. {{"fluency": 1, "correctness": {correct}}}'
    if '"precision"' in prompt:  # scripts/eval_gpt4_summ.py, precision
        return 'One sentence is supported. Output: {"precision": 1, "sentence_count": 2}'
    if '"recall"' in prompt:
        return 'The first key point is covered. Output: {"supported_key_points": [1], "recall": 1}'
    if re.search(r"evaluate the fluency", prompt):
        return 'The text is fluent. Output: {"fluency": 1}'
    return "I cannot judge this."


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/chat/completions":
            self.send_error(404, "only /v1/chat/completions here")
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")
        self.server.requests.append({"model": body["model"], "prompt": prompt, "max_tokens": body.get("max_tokens"),
                                     "temperature": body.get("temperature")})
        content = judgement(prompt)
        reply = {"id": f"chatcmpl-{len(self.server.requests)}", "object": "chat.completion",
                 "created": int(time.time()), "model": body["model"], "system_fingerprint": "fp_test",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                              "finish_reason": "stop", "logprobs": None}],
                 "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(content.split()),
                           "total_tokens": len(prompt.split()) + len(content.split())}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class OpenAIServer:
    """`with OpenAIServer() as server:` serves at server.url (…/v1) until the block ends."""

    def __enter__(self) -> "OpenAIServer":
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.requests = []
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @property
    def requests(self) -> list[dict]:
        return self.httpd.requests

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
