"""Xet: the server does not speak it. A client left with Xet on fails fast (no silent hang), and
`disable_xet_for(endpoint)` switches an already imported huggingface_hub to the LFS path."""
from __future__ import annotations

import os
import subprocess
import sys

from tensorferry.publish.hub import create_token
from tensorferry.publish.hub_io import disable_xet_for, is_official_hub

SCRIPT = """
import os, sys, time
from huggingface_hub import HfApi
from tensorferry.publish.hub_io import disable_xet_for
url, token = sys.argv[1], sys.argv[2]
api = HfApi(endpoint=url, token=token)
api.create_repo("xetuser/x", exist_ok=True)
t = time.monotonic()
try:
    api.upload_file(path_or_fileobj=os.urandom(1 << 20), path_in_repo="w.bin", repo_id="xetuser/x")
    print("XET-ON: uploaded")
except Exception as e:
    print("XET-ON:", type(e).__name__, "xet-write-token" in str(e), round(time.monotonic() - t, 1))
assert disable_xet_for(url)
api.upload_file(path_or_fileobj=os.urandom(1 << 20), path_in_repo="w.bin", repo_id="xetuser/x")
print("XET-OFF:", [s.rfilename for s in api.model_info("xetuser/x").siblings])
"""


def test_xet_fails_fast_and_disable_xet_for_fixes_it(hub) -> None:
    token = create_token(hub.data_dir, "xetuser")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_XET"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, hub.url, token], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines() if line.startswith("XET-"))
    kind, mentions_route, seconds = lines["XET-ON"].split()
    assert mentions_route == "True" and float(seconds) < 10, lines
    assert lines["XET-OFF"] == "['.gitattributes', 'w.bin']"


def test_official_hub_keeps_xet() -> None:
    assert is_official_hub("https://huggingface.co") and is_official_hub("https://hf.co")
    assert not is_official_hub("http://127.0.0.1:8765") and not is_official_hub("https://huggingface.co.evil.example")
    assert disable_xet_for("https://huggingface.co") is False
    assert disable_xet_for("http://localhost:1") is True and os.environ["HF_HUB_DISABLE_XET"] == "1"
