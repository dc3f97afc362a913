#!/usr/bin/env python3
"""dsv2 serve used by a third-party client: the official `openai` package from PyPI.

Installs `openai` once into a venv under the build folder. When that is impossible (no network to
PyPI, no venv module) the test exits 77, which ctest reports as SKIPPED with the reason printed:
it never passes without having run.
"""
import argparse
import base64
import os
import re
import signal
import subprocess
import sys
import time

SKIP = 77


def ensure_venv(venv):
    python = os.path.join(venv, "bin", "python")
    if os.path.exists(python):
        check = subprocess.run([python, "-c", "import openai"], capture_output=True)
        if check.returncode == 0:
            return python
    try:
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        print(f"SKIPPED: cannot create a venv ({e}); install python3-venv", flush=True)
        sys.exit(SKIP)
    try:
        subprocess.run([python, "-m", "pip", "install", "--disable-pip-version-check", "-q", "openai"],
                       check=True, capture_output=True, timeout=400)
    except subprocess.CalledProcessError as e:
        print("SKIPPED: pip could not install openai from PyPI (offline?):\n" + e.stderr.decode()[-800:], flush=True)
        sys.exit(SKIP)
    except subprocess.TimeoutExpired:
        print("SKIPPED: pip install openai timed out (PyPI unreachable?)", flush=True)
        sys.exit(SKIP)
    return python


def start_server(args):
    log = open(args.log, "w")
    proc = subprocess.Popen([args.dsv2, "serve", "--model", args.model, "--backend", "cpu", "--threads", "1",
                             "--port", "0", "--api-key", "test-key", "--enable-return-routed-experts"],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    raise SystemExit(f"dsv2 serve did not start; see {args.log}")


def npy_shape(b64):
    raw = base64.b64decode(b64)
    assert raw[:6] == b"\x93NUMPY", "routed_experts is not a .npy payload"
    header_len = raw[8] | (raw[9] << 8)
    header = raw[10:10 + header_len].decode("latin1")
    assert "'descr': '<i4'" in header, header
    return tuple(int(x) for x in re.search(r"'shape': \(([^)]*)\)", header).group(1).split(",") if x.strip())


def run_checks(base_url):
    import openai

    client = openai.OpenAI(base_url=base_url + "/v1", api_key="test-key", max_retries=0, timeout=120)
    models = [m.id for m in client.models.list()]
    assert models == ["tiny-lite"], models

    messages = [{"role": "user", "content": "Hello there"}]
    full = client.chat.completions.create(model="tiny-lite", messages=messages, temperature=0, max_tokens=12,
                                          logprobs=True, top_logprobs=2)
    choice = full.choices[0]
    assert isinstance(choice.message.content, str) and choice.message.content, choice
    assert full.usage.completion_tokens == len(choice.logprobs.content), full.usage
    assert all(len(t.top_logprobs) == 2 for t in choice.logprobs.content)
    assert full.usage.total_tokens == full.usage.prompt_tokens + full.usage.completion_tokens
    # vLLM's field, read the way a vLLM client reads it (pydantic keeps unknown fields).
    routed = choice.model_extra["routed_experts"]
    shape = npy_shape(routed)
    assert shape == (full.usage.prompt_tokens + full.usage.completion_tokens - 1, 3, 2), shape

    stream = client.chat.completions.create(model="tiny-lite", messages=messages, temperature=0, max_tokens=12,
                                            stream=True, stream_options={"include_usage": True})
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == choice.message.content, (text, choice.message.content)
    assert finish == choice.finish_reason, finish
    assert usage is not None and usage.completion_tokens == full.usage.completion_tokens

    stop = choice.message.content[4:6]
    stopped = client.chat.completions.create(model="tiny-lite", messages=messages, temperature=0, max_tokens=12,
                                             stop=[stop])
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].message.content == choice.message.content[:choice.message.content.find(stop)]

    comp = client.completions.create(model="tiny-lite", prompt="Once upon a time", max_tokens=8, temperature=0)
    assert comp.choices[0].text and comp.usage.completion_tokens <= 8

    for call, error in [
        (lambda: openai.OpenAI(base_url=base_url + "/v1", api_key="wrong", max_retries=0).models.list(),
         openai.AuthenticationError),
        (lambda: client.chat.completions.create(model="nope", messages=messages), openai.NotFoundError),
        (lambda: client.chat.completions.create(model="tiny-lite", messages=messages, max_tokens=-1),
         openai.BadRequestError),
        (lambda: client.chat.completions.create(model="tiny-lite", messages=messages, temperature=9),
         openai.BadRequestError),
    ]:
        try:
            call()
        except error as e:
            assert e.message, e
        else:
            raise AssertionError(f"expected {error.__name__}")
    print(f"openai {openai.__version__}: models, chat (plain, streamed, stop), completions, errors: all as expected")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dsv2", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--venv", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.inside:  # running in the venv, against a server started by the outer run
        run_checks(args.url)
        return 0
    python = ensure_venv(args.venv)
    proc, url = start_server(args)
    try:
        checks = subprocess.run([python, __file__, "--inside", "--url", url, "--dsv2", args.dsv2, "--model",
                                 args.model, "--venv", args.venv, "--log", args.log], timeout=400)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "hung"
    if code != 0:
        print(f"dsv2 serve did not exit cleanly on SIGTERM ({code}); see {args.log}")
        return 1
    return checks.returncode


if __name__ == "__main__":
    sys.exit(main())
