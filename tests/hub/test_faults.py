"""TEST-ONLY fault injection (`TENSORFERRY_HUB_FAULTS`): a seeded fraction of API and LFS requests
answered 429 (with Retry-After), 500, or dropped without an answer, before any work is done."""
from __future__ import annotations

import hashlib
import http.client
import math
import os
from collections import Counter
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfApi

from .hub_helpers import host_port, raw
from tensorferry.publish.hub import LocalHub, create_token

SPEC = "429:0.2,500:0.1,drop:0.05,seed:7"


def _statuses(url: str, path: str, n: int) -> list[str]:
    out = []
    for _ in range(n):
        conn = http.client.HTTPConnection(*host_port(url), timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            out.append(str(resp.status) + (f"/retry-after={resp.getheader('Retry-After')}" if resp.status == 429 else ""))
        except (http.client.RemoteDisconnected, ConnectionResetError):
            out.append("drop")
        finally:
            conn.close()
    return out


def test_faults_hit_the_api_at_the_configured_rates_and_are_seeded(tmp_path: Path) -> None:
    runs = []
    for attempt in range(2):
        data = tmp_path / f"hub{attempt}"
        token = create_token(data, "alice")
        with LocalHub(data, env={"TENSORFERRY_HUB_FAULTS": SPEC}) as hub:
            while True:  # the repo must exist; creation itself may be faulted
                try:
                    status = raw(hub.url, "POST", "/api/repos/create", '{"name":"r"}', token,
                                 {"Content-Type": "application/json"})[0]
                except (http.client.RemoteDisconnected, ConnectionResetError):
                    status = 0
                if status in (200, 409):
                    break
            runs.append(_statuses(hub.url, "/api/models/alice/r", 400))
            assert _statuses(hub.url, "/health", 50) == ["200"] * 50  # never faulted
            log = hub.log_path.read_text()
        assert "TEST-ONLY" in log and "TENSORFERRY_HUB_FAULTS" in log
    counts = Counter(runs[0])
    n = len(runs[0])
    for outcome, rate in (("429/retry-after=1", 0.2), ("500", 0.1), ("drop", 0.05), ("200", 0.65)):
        sigma = math.sqrt(n * rate * (1 - rate))
        assert abs(counts[outcome] - n * rate) < 4 * sigma, (outcome, counts)
    assert set(counts) == {"429/retry-after=1", "500", "drop", "200"}
    # Same seed, same sequence of requests: the same requests are faulted, the same way.
    assert runs[1] == runs[0]


def test_the_unmodified_client_gets_through_429s_by_its_own_retries(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    token = create_token(data, "alice")
    with LocalHub(data) as hub:
        HfApi(endpoint=hub.url, token=token).create_repo("alice/r")
    with LocalHub(data, env={"TENSORFERRY_HUB_FAULTS": "429:0.3,seed:3"}) as hub:
        api = HfApi(endpoint=hub.url, token=token)
        payloads = [os.urandom(256 << 10) for _ in range(4)]
        ops = [CommitOperationAdd(f"w{i}.bin", p) for i, p in enumerate(payloads)]
        # preupload, the LFS batch, each PUT and verify retry on 429 (huggingface_hub's http_backoff).
        api.preupload_lfs_files("alice/r", ops)
        assert all(op._is_uploaded for op in ops)
        log = hub.log_path.read_text()
    assert "fault injected: 429" in log  # faults did happen; the uploads got through anyway
    with LocalHub(data) as hub:  # without faults: the objects are stored, commit them
        api = HfApi(endpoint=hub.url, token=token)
        api.create_commit("alice/r", ops, commit_message="after faults")
        info = {s.rfilename: s.lfs.sha256 for s in api.model_info("alice/r", files_metadata=True).siblings if s.lfs}
        assert info == {f"w{i}.bin": hashlib.sha256(p).hexdigest() for i, p in enumerate(payloads)}


@pytest.mark.parametrize("spec", ["429:2", "500:-0.1", "teapot:0.1", "429", "seed:x", "429:0.6,500:0.6"])
def test_bad_fault_specs_stop_the_server_with_a_message(tmp_path: Path, spec: str) -> None:
    from tensorferry.converters.errors import HubError

    with pytest.raises(HubError, match="TENSORFERRY_HUB_FAULTS"):
        with LocalHub(tmp_path / "hub", env={"TENSORFERRY_HUB_FAULTS": spec}, startup_timeout=20):
            pass
