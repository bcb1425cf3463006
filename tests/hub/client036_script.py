"""Run by test_client036.py inside a venv with huggingface_hub 0.36 (the version transformers
4.57 pins): create a repo, upload regular and LFS files, download them, open and merge a PR.

Usage: python client036_script.py ENDPOINT TOKEN WORKDIR   (prints "OK <version>" on success)
"""
import hashlib
import os
import sys

os.environ["HF_HUB_DISABLE_XET"] = "1"  # the server does not speak Xet (contract §2)

import huggingface_hub  # noqa: E402
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download, snapshot_download  # noqa: E402

endpoint, token, work = sys.argv[1], sys.argv[2], sys.argv[3]
assert huggingface_hub.__version__.startswith("0.36"), huggingface_hub.__version__
api = HfApi(endpoint=endpoint, token=token)
assert api.whoami()["name"] == "alice"
repo = api.create_repo("alice/from-036", exist_ok=True).repo_id
weights = os.urandom(12 << 20)
folder = os.path.join(work, "upload")
os.makedirs(folder, exist_ok=True)
with open(os.path.join(folder, "model.safetensors"), "wb") as f:
    f.write(weights)
with open(os.path.join(folder, "README.md"), "w") as f:
    f.write("---\nlicense: mit\n---\n# From 0.36\n")
api.upload_folder(repo_id=repo, folder_path=folder, commit_message="upload from 0.36")
info = api.model_info(repo, files_metadata=True)
lfs = {s.rfilename: s.lfs for s in info.siblings}
assert lfs["model.safetensors"].sha256 == hashlib.sha256(weights).hexdigest(), lfs
assert lfs["README.md"] is None and info.card_data["license"] == "mit"
cache = os.path.join(work, "cache")
path = hf_hub_download(repo, "model.safetensors", endpoint=endpoint, token=token, cache_dir=cache)
assert open(path, "rb").read() == weights
snap = snapshot_download(repo, endpoint=endpoint, token=token, cache_dir=cache)
assert sorted(os.listdir(snap)) == [".gitattributes", "README.md", "model.safetensors"], os.listdir(snap)
pr = api.create_commit(repo, [CommitOperationAdd("extra.bin", os.urandom(1 << 20))], commit_message="PR from 0.36",
                       create_pr=True)
assert pr.pr_revision == "refs/pr/1", pr.pr_revision
assert "extra.bin" in api.list_repo_files(repo, revision=pr.pr_revision)
assert "extra.bin" not in api.list_repo_files(repo)
api.merge_pull_request(repo, pr.pr_num)
assert "extra.bin" in api.list_repo_files(repo)
print("OK", huggingface_hub.__version__)
