"""An organisation of 12 tiny repos on the real local Hub, built through the unmodified huggingface_hub client.

Every kind the batch must tell apart: PT-only (two families), TF-only and Flax-only (made by
converting the fixtures), PT + TF (Flax missing), sharded, private, complete, corrupt, over
``--max-size``, no weights, and one with a closed tensorferry PR for its current head.  ``EXPECTED`` is
what every run must end with, whatever the executor, the faults or the interruptions.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import itertools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from tensorferry.converters import convert
from tensorferry.fixtures import checkpoint_dir
from tensorferry.publish.batch.plan import marker
from tensorferry.publish.hub import LocalHub, create_token
from tensorferry.publish.hub_io import hub_api

MAX_SIZE = "500KB"
# repo name → (final status, added frameworks)
EXPECTED = {
    "pt-cnn": ("pushed", "tf,flax"),
    "pt-recurrent": ("pushed", "tf,flax"),
    "tf-cnn": ("pushed", "pt,flax"),
    "flax-cnn": ("pushed", "pt,tf"),
    "pt-tf": ("pushed", "flax"),
    "sharded": ("pushed", "tf,flax"),
    "private": ("pushed", "tf,flax"),
    "complete": ("skipped", ""),
    "corrupt": ("failed", ""),
    "big": ("skipped", ""),
    "has-pr": ("skipped", ""),
    "no-weights": ("skipped", ""),
}
CONVERTED = sorted(name for name, (status, _) in EXPECTED.items() if status == "pushed")
_orgs = itertools.count()


@dataclass
class Org:
    name: str
    url: str
    token: str  # a member's write token
    data_dir: Path

    def api(self):
        return hub_api(self.url, self.token)

    def repo(self, name: str) -> str:
        return f"{self.name}/{name}"

    def cli_args(self, tmp: Path, *extra: str) -> list[str]:
        """``tensorferry batch`` arguments for this org, its journal, report and cache in TMP."""
        return ["batch", self.name, "--endpoint", self.url, "--token", self.token, "--max-size", MAX_SIZE,
                "--verify", "weights", "--journal", str(tmp / "journal.sqlite"), "--report", str(tmp / "report"),
                "--cache-dir", str(tmp / "hf-cache"), *extra]


@pytest.fixture(scope="session")
def variants(tmp_path_factory) -> dict[str, Path]:
    """Folders holding one framework's files each, made by converting the fixtures (no framework imported)."""
    root = tmp_path_factory.mktemp("batch-variants")
    out = {}
    for name, family, to, shard in [("tf-cnn", "cnn", ["tf"], "5GB"), ("flax-cnn", "cnn", ["flax"], "5GB"),
                                    ("pt-tf", "cnn", ["tf"], "5GB"), ("complete", "cnn", ["tf", "flax"], "5GB"),
                                    ("sharded", "transformer", ["pt"], "40KB")]:
        folder = root / name
        convert(checkpoint_dir(family), folder, to=to, max_shard_size=shard)
        if name in ("pt-tf", "complete"):
            shutil.copy(checkpoint_dir(family) / "model.safetensors", folder)
        out[name] = folder
    big = root / "big"
    big.mkdir()
    save_file({"w": np.random.default_rng(0).standard_normal((400, 400)).astype(np.float32)},  # 640 kB
              str(big / "model.safetensors"))
    shutil.copy(checkpoint_dir("cnn") / "config.json", big)
    corrupt = root / "corrupt"
    corrupt.mkdir()
    (corrupt / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + b"\0" * 64)
    shutil.copy(checkpoint_dir("cnn") / "config.json", corrupt)
    none = root / "no-weights"
    none.mkdir()
    shutil.copy(checkpoint_dir("cnn") / "config.json", none)
    (none / "README.md").write_text("# no weights here\n")
    out.update({"big": big, "corrupt": corrupt, "no-weights": none, "pt-cnn": checkpoint_dir("cnn"),
                "pt-recurrent": checkpoint_dir("recurrent"), "private": checkpoint_dir("transformer"),
                "has-pr": checkpoint_dir("cnn")})
    return out


def build_org(url: str, data_dir: Path, variants: dict[str, Path], name: str | None = None) -> Org:
    """Create the organisation's 12 repos on the Hub at URL (one upload each)."""
    name = name or f"acme{next(_orgs)}"
    org = Org(name, url, create_token(data_dir, "bot", org=name), Path(data_dir))
    api = org.api()
    for repo, folder in variants.items():
        api.create_repo(org.repo(repo), private=repo == "private")
        api.upload_folder(repo_id=org.repo(repo), folder_path=str(folder), commit_message=f"upload {repo}")
    head = api.model_info(org.repo("has-pr")).sha
    pr = api.create_pull_request(org.repo("has-pr"), title="Add tf, flax weights (tensorferry)",
                                 description="converted earlier\n\n" + marker(head, "feedfacefeedface"))
    api.change_discussion_status(org.repo("has-pr"), pr.num, "closed", comment="declined")
    return org


@pytest.fixture(scope="session")
def hub(tmp_path_factory) -> Iterator[LocalHub]:
    with LocalHub(tmp_path_factory.mktemp("batch-hub")) as server:
        yield server


@pytest.fixture
def org(hub, variants) -> Org:
    """A fresh organisation on the shared local Hub."""
    return build_org(hub.url, hub.data_dir, variants)


def statuses(rows) -> dict[str, tuple[str, str]]:
    """Report rows → {repo name: (status, added)} to compare with EXPECTED."""
    return {r["repo"].split("/", 1)[1]: (r["status"], r["added"]) for r in rows}


def tensorferry_prs(org: Org, name: str) -> list:
    """The PRs on a repo whose title says tensorferry, any status."""
    return [d for d in org.api().get_repo_discussions(org.repo(name), discussion_type="pull_request")
            if "(tensorferry)" in d.title]
