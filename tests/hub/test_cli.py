"""The `hub` CLI: `token create` prints a token usable at once by a running server; the
subparser hooks into the main CLI; `serve --port 0` reports the port it bound."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from huggingface_hub import HfApi

from tensorferry.publish.hub import LocalHub
from tensorferry.publish.hub.cli import add_subparser


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tensorferry.publish.hub", *args],
                          capture_output=True, text=True, timeout=60)


def test_token_create_is_usable_at_once(hub) -> None:
    out = run_cli("token", "create", "--user", "dora", "--org", "labs", "--data-dir", str(hub.data_dir))
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    me = HfApi(endpoint=hub.url, token=token).whoami()
    assert me["name"] == "dora" and [o["name"] for o in me["orgs"]] == ["labs"]
    out = run_cli("token", "create", "--user", "dora", "--data-dir", str(hub.data_dir), "--json")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["user"] == "dora" and HfApi(endpoint=hub.url, token=data["token"]).whoami()["name"] == "dora"
    assert data["token"] != token


def test_token_create_rejects_bad_names(tmp_path) -> None:
    out = run_cli("token", "create", "--user", "../evil", "--data-dir", str(tmp_path))
    assert out.returncode == 2 and "Invalid user name" in out.stderr


def test_subparser_hooks_into_a_main_cli() -> None:
    parser = argparse.ArgumentParser(prog="tensorferry")
    add_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["hub", "serve", "--port", "0", "--data-dir", "/tmp/x"])
    assert args.func.__name__ == "cmd_serve" and args.port == 0 and str(args.data_dir) == "/tmp/x"
    args = parser.parse_args(["hub", "token", "create", "--user", "u", "--org", "o", "--json"])
    assert args.func.__name__ == "cmd_token_create" and (args.user, args.org, args.json) == ("u", "o", True)


def test_serve_on_a_busy_port_exits_4(tmp_path) -> None:
    with LocalHub(tmp_path / "a") as first:
        port = first.url.rsplit(":", 1)[1]
        out = run_cli("serve", "--port", port, "--data-dir", str(tmp_path / "b"))
    assert out.returncode == 4 and "already in use" in out.stderr


def test_serve_refuses_bad_limits_and_fault_specs(tmp_path) -> None:
    for args in (["--header-timeout", "0"], ["--idle-timeout", "-1"], ["--max-connections", "0"]):
        out = run_cli("serve", "--port", "0", "--data-dir", str(tmp_path), *args)
        assert out.returncode == 2 and "timeouts must be positive" in out.stderr, (args, out.stderr)
    env = {**os.environ, "TENSORFERRY_HUB_FAULTS": "500:1.5"}
    out = subprocess.run([sys.executable, "-m", "tensorferry.publish.hub", "serve", "--port", "0", "--data-dir",
                          str(tmp_path)], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 2 and "TENSORFERRY_HUB_FAULTS" in out.stderr, out.stderr
