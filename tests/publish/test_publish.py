"""`tensorferry publish` against the local Hub, through the unmodified huggingface_hub client only.

One publish with outputs verified (the others check weights only: worker start-up dominates);
every other property — one commit, pull requests, private repos, idempotence, races, dry runs,
a Hub repo as source, tokens kept out of everything — has its own test.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tensorferry.fixtures import FAMILIES, checkpoint_dir, flax_variables
from tensorferry.publish import publish
from tensorferry.publish.cli import main

from .conftest import commits

TOLERANCE = 5e-5
VARIANTS = ("model.safetensors", "tf_model.h5", "flax_model.msgpack")


def _download(hub, repo: str, names, revision: str = "main", token: str | None = None) -> dict[str, Path]:
    api = hub.api(token)
    return {n: Path(api.hf_hub_download(repo, n, revision=revision)) for n in names}


@pytest.fixture(scope="module")
def published(hub):
    """The fixture transformer published with outputs verified in all three frameworks."""
    repo = hub.repo("tiny-transformer")
    before = []
    result = publish(checkpoint_dir("transformer"), repo, endpoint=hub.url, token=hub.token, quiet=True)
    return repo, result, before


def test_every_variant_lands_in_exactly_one_new_commit(hub, published) -> None:
    repo, result, _ = published
    history = commits(hub, repo)
    assert len(history) == 2 and history[0] == result.commit_oid  # the repo's initial commit, then ours
    files = set(hub.api().list_repo_files(repo))
    assert set(VARIANTS) | {"config.json", "README.md", "verification.json", "verification.md", "verification.png"} <= files
    assert {f.path for f in result.files} <= files and all(f.action == "add" for f in result.files)
    v = result.verification
    assert v.passed and v.complete and set(v.functional) == {"tf", "flax"}


def test_each_downloaded_variant_loads_in_its_framework_with_the_source_outputs(hub, published) -> None:
    from safetensors.torch import load_model

    repo, _, _ = published
    module = FAMILIES["transformer"]
    got = _download(hub, repo, VARIANTS)
    inputs = module.example_inputs()
    torch_model = module.torch_model(module.CONFIG)
    load_model(torch_model, str(checkpoint_dir("transformer") / "model.safetensors"))
    expected = module.run_torch(torch_model, inputs)
    load_model(torch_model, str(got["model.safetensors"]))  # strict
    np.testing.assert_array_equal(module.run_torch(torch_model, inputs), expected)
    keras = module.keras_model(module.CONFIG)
    keras.load_weights(str(got["tf_model.h5"]))  # Keras' own positional loader
    assert np.abs(module.run_keras(keras, inputs) - expected).max() <= TOLERANCE
    flax_module, template = module.flax_model(module.CONFIG)
    variables = flax_variables(template, got["flax_model.msgpack"].read_bytes())
    assert np.abs(module.run_flax(flax_module, variables, inputs) - expected).max() <= TOLERANCE


def test_the_shared_card_says_what_was_converted_and_how_it_was_verified(hub, published) -> None:
    from huggingface_hub import ModelCard

    repo, _, _ = published
    card = ModelCard.load(_download(hub, repo, ["README.md"])["README.md"])
    assert {"pytorch", "tensorflow", "jax", "safetensors", "tensorferry"} <= set(card.data.tags)
    text = card.text
    assert "| PyTorch (source) | `model.safetensors` |" in text and "| TensorFlow | `tf_model.h5` |" in text
    assert "Outputs were compared in TensorFlow, Flax" in text and "✅ pass" in text
    assert "![max |Δ| per output and framework](verification.png)" in text
    assert 'tensorferry.publish.load("' + repo + '", "flax")' in text
    assert "tensorferry 0.1.0" in text
    report = json.loads(_download(hub, repo, ["verification.json"])["verification.json"].read_text())
    assert report["passed"] and report["complete"] and report["schema"] == "tensorferry.verification/2"


def test_a_rerun_with_identical_files_makes_no_commit(hub, published, capsys) -> None:
    repo, _, _ = published
    before = commits(hub, repo)
    code = main(["publish", str(checkpoint_dir("transformer")), repo, "--endpoint", hub.url, "--token", hub.token])
    assert code == 0 and commits(hub, repo) == before
    assert "nothing to publish" in capsys.readouterr().out


def test_create_pr_puts_everything_on_one_pull_request_and_leaves_main_untouched(hub) -> None:
    repo = hub.repo("pr")
    api = hub.api()
    api.create_repo(repo)
    main_before = commits(hub, repo)
    result = publish(checkpoint_dir("cnn"), repo, endpoint=hub.url, token=hub.token, create_pr=True, verify="weights",
                     quiet=True)
    assert result.pr_url and result.pr_url.endswith("/discussions/1")
    assert commits(hub, repo) == main_before and set(api.list_repo_files(repo)) == {".gitattributes"}
    on_pr = set(api.list_repo_files(repo, revision="refs/pr/1"))
    assert set(VARIANTS) | {"README.md", "config.json"} <= on_pr
    assert len(commits(hub, repo, "refs/pr/1")) == len(main_before) + 1
    details = api.get_discussion_details(repo, 1)
    assert details.is_pull_request and "Verified by tensorferry" in details.events[0].content  # the table in the PR


def test_private_repo_is_created_private(hub) -> None:
    from huggingface_hub.errors import RepositoryNotFoundError

    repo = hub.repo("private")
    publish(checkpoint_dir("recurrent"), repo, endpoint=hub.url, token=hub.token, private=True, verify="weights", quiet=True)
    assert hub.api().model_info(repo).private is True
    with pytest.raises(RepositoryNotFoundError):
        hub.api(token=False).model_info(repo)  # anonymous: not even its existence shows


def test_a_branch_that_does_not_exist_is_created_from_main(hub) -> None:
    repo = hub.repo("branch")
    result = publish(checkpoint_dir("cnn"), repo, endpoint=hub.url, token=hub.token, revision="tf-weights", to="tf",
                     verify="weights", quiet=True)
    api = hub.api()
    assert "tf_model.h5" in api.list_repo_files(repo, revision="tf-weights")
    assert "tf_model.h5" not in api.list_repo_files(repo)
    assert result.revision == "tf-weights"


def test_a_concurrent_commit_is_reported_never_overwritten(hub, capsys) -> None:
    repo = hub.repo("race")
    api = hub.api()
    api.create_repo(repo)
    planned = commits(hub, repo)[0]
    api.upload_file(path_or_fileobj=b"someone else", path_in_repo="notes.txt", repo_id=repo)  # lands after our plan
    now = commits(hub, repo)[0]
    code = main(["publish", str(checkpoint_dir("cnn")), repo, "--endpoint", hub.url, "--token", hub.token,
                 "--parent-commit", planned, "--verify", "weights"])
    err = capsys.readouterr().err
    assert code == 4 and now in err and "nothing was overwritten" in err
    assert commits(hub, repo)[0] == now and "tf_model.h5" not in api.list_repo_files(repo)


def test_dry_run_sends_nothing_and_prints_the_plan(hub, capsys) -> None:
    from huggingface_hub.errors import RepositoryNotFoundError

    repo = hub.repo("dry")
    code = main(["publish", str(checkpoint_dir("cnn")), repo, "--endpoint", hub.url, "--token", hub.token, "--dry-run",
                 "--json", "--verify", "weights"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["dry_run"] and doc["commit_oid"] is None
    assert {f["path"] for f in doc["files"]} >= set(VARIANTS) and all(f["action"] == "add" for f in doc["files"])
    assert all(f["size"] > 0 for f in doc["files"])
    with pytest.raises(RepositoryNotFoundError):
        hub.api().model_info(repo)  # not even created


def test_a_hub_repo_as_source_downloads_its_variant_and_sets_base_model(hub) -> None:
    from huggingface_hub import ModelCard

    source = hub.repo("pt-only")
    publish(checkpoint_dir("cnn"), source, endpoint=hub.url, token=hub.token, to="pt", quiet=True)
    target = hub.repo("three-frameworks")
    result = publish(source, target, endpoint=hub.url, token=hub.token, verify="weights", quiet=True)
    files = set(hub.api().list_repo_files(target))
    assert set(VARIANTS) <= files
    card = ModelCard.load(_download(hub, target, ["README.md"])["README.md"])
    assert card.data.base_model == source
    source_sha = hub.api().model_info(source).sha
    assert source_sha in card.text  # provenance names the exact source revision
    assert result.verification.passed


def test_a_source_in_the_hf_cache_is_not_hashed_again_and_stays_unchanged(hub, tmp_path) -> None:
    """huggingface_hub names an LFS blob after its sha256: the publisher takes the digest from the name
    (nothing read, no hashing thread) and it is the file's real digest, so the source is left as it is."""
    from tensorferry.publish.files import cached_digest, digest
    from tensorferry.publish.hub_io import Hub, fetch
    from tensorferry.publish.publisher import _hashing

    repo = hub.repo("in-place")
    publish(checkpoint_dir("cnn"), repo, endpoint=hub.url, token=hub.token, to="pt", quiet=True)
    snapshot, _ = fetch(repo, Hub.resolve(hub.url, hub.token), cache_dir=str(tmp_path / "cache"))
    weights = snapshot / "model.safetensors"
    assert weights.is_symlink() and cached_digest(weights) == digest(weights)
    with _hashing([weights]) as hashes:
        assert hashes[weights].done()  # taken from the blob's name, not queued for the thread
        assert hashes[weights].result() == digest(weights)
    result = publish(repo, repo, to="pt,tf", endpoint=hub.url, token=hub.token, verify="weights", quiet=True,
                     cache_dir=str(tmp_path / "cache"))
    actions = {f.path: f.action for f in result.files}
    assert actions["model.safetensors"] == "unchanged" and actions["tf_model.h5"] == "add", actions


def test_an_existing_card_keeps_its_prose_and_metadata(hub) -> None:
    from huggingface_hub import ModelCard

    repo = hub.repo("carded")
    api = hub.api()
    api.create_repo(repo)
    mine = "---\nlicense: mit\ntags:\n- speech\n---\n# My model\n\nWritten by hand, kept by tensorferry.\n"
    api.upload_file(path_or_fileobj=mine.encode(), path_in_repo="README.md", repo_id=repo)
    publish(checkpoint_dir("cnn"), repo, endpoint=hub.url, token=hub.token, verify="weights", quiet=True)
    card = ModelCard.load(_download(hub, repo, ["README.md"])["README.md"])
    assert card.data.license == "mit" and card.data.tags[0] == "speech" and "tensorferry" in card.data.tags
    assert card.text.startswith("# My model\n\nWritten by hand, kept by tensorferry.\n")
    assert card.text.count("tensorferry:begin") == 1


def test_variants_the_repo_already_holds_are_listed_as_such_not_as_checked(hub) -> None:
    from huggingface_hub import ModelCard

    repo = hub.repo("adding")
    publish(checkpoint_dir("cnn"), repo, to="pt,tf", endpoint=hub.url, token=hub.token, verify="weights", quiet=True)
    result = publish(checkpoint_dir("cnn"), repo, to="flax", endpoint=hub.url, token=hub.token, verify="weights", quiet=True)
    assert {f.path for f in result.files if f.action != "unchanged"} >= {"flax_model.msgpack", "README.md"}
    card = ModelCard.load(_download(hub, repo, ["README.md"])["README.md"])
    assert {"pytorch", "tensorflow", "jax"} <= set(card.data.tags)
    rows = {line.split("|")[1].strip(): line for line in card.text.splitlines() if line.startswith("| ") and "`" in line}
    assert set(rows) == {"PyTorch (already in the repo)", "TensorFlow (already in the repo)", "Flax"}, rows
    assert "were in the repository before and were left as they were: this run did not check them" in card.text
    assert "holds the same weights for Flax, converted" in card.text  # the unchecked ones are not claimed
    assert "from a PyTorch checkpoint." in card.text


def test_bad_source_is_exit_2_before_anything_is_sent(hub, tmp_path, capsys) -> None:
    from huggingface_hub.errors import RepositoryNotFoundError

    repo = hub.repo("bad-src")
    (tmp_path / "model.safetensors").write_bytes(b"not a checkpoint at all")
    code = main(["publish", str(tmp_path), repo, "--endpoint", hub.url, "--token", hub.token])
    assert code == 2 and "model.safetensors" in capsys.readouterr().err
    with pytest.raises(RepositoryNotFoundError):
        hub.api().model_info(repo)


def test_the_token_appears_nowhere(hub, tmp_path, capsys, caplog) -> None:
    token = hub.token
    repo = hub.repo("secret")
    assert main(["publish", str(checkpoint_dir("cnn")), repo, "--endpoint", hub.url, "--token", token,
                 "--verify", "weights", "--json"]) == 0
    out = capsys.readouterr()
    texts = [out.out, out.err, caplog.text]
    for name in hub.api().list_repo_files(repo):
        texts.append(_download(hub, repo, [name])[name].read_bytes().decode("latin-1"))
    assert "--token ***" in texts[-1] or any("--token ***" in t for t in texts)  # the card's command line, redacted
    # a refused token: the Hub's message, exit 4, still no token
    bad = "hf_" + "x" * 34
    assert main(["publish", str(checkpoint_dir("cnn")), "acme/not-yours", "--endpoint", hub.url, "--token", bad,
                 "--verify", "weights"]) == 4
    err = capsys.readouterr().err
    texts.append(err)
    assert "error:" in err and bad not in err
    for text in texts:
        assert token not in text and bad not in text


def test_the_cli_never_prints_a_token_even_in_an_internal_error(monkeypatch, capsys) -> None:
    from tensorferry.publish import cli

    secret = "hf_" + "Q" * 30

    def boom(sub):
        p = sub.add_parser("boom")
        p.add_argument("--token")
        p.set_defaults(func=lambda args: (_ for _ in ()).throw(RuntimeError(f"header Authorization: Bearer {args.token}")))

    monkeypatch.setitem(cli.COMMANDS, "boom", boom)
    assert cli.main(["boom", "--token", secret]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError" in err and secret not in err and "hf_***" in err
