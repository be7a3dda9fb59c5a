"""The road from a training run to its use: ``alob-eval embed`` writes the embeddings of any
folder of images (the same vectors ``--save-embeddings`` writes for the same images; raw photos
aligned first with ``--align``), ``load_model`` loads what ``alob-eval --which`` loads, and
every alob-eval command takes ``--device``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from train_fixtures import write_pairs

from alob_eval.cli import main
from alob_eval.embeddings import load_embeddings
from alob_train.checkpoint import load_model, save_checkpoint, save_untrained


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return save_untrained(tmp_path_factory.mktemp("run") / "run", "lightcnn9", "alob", (40, 32), classes=4)


def _embed(*args: str):
    return CliRunner().invoke(main, ["embed", *args, "--quiet", "--device", "cpu"])


def test_embed_equals_the_embeddings_the_evaluation_saves(run, tmp_path):
    data = write_pairs(tmp_path / "set")
    saved = CliRunner().invoke(main, ["--checkpoint", str(run), "--bench", f"x={data}", "--save-embeddings",
                                      str(tmp_path / "saved.npz"), "--out", str(tmp_path / "report"), "--quiet"])
    assert saved.exit_code == 0, saved.output
    result = _embed("--data", str(data), "--checkpoint", str(run), "--out", str(tmp_path / "emb"))
    assert result.exit_code == 0, result.output
    mine = load_embeddings(tmp_path / "emb" / "embeddings.npz")
    theirs = load_embeddings(tmp_path / "saved.npz")
    images = sorted(p.relative_to(data).as_posix() for p in data.rglob("*.png"))
    assert sorted(mine) == images  # every image, keyed relative to --data
    assert {str(data / p) for p in images} == set(theirs)
    for path in images:
        np.testing.assert_allclose(mine[path], theirs[str(data / path)], rtol=1e-6, atol=1e-6)
    meta = json.loads((tmp_path / "emb" / "embed.json").read_text())
    assert meta["counts"] == {"images": len(images), "embedded": len(images), "failed": 0, "no_face": 0,
                              "other_files": 1}  # pairs.csv
    rescored = CliRunner().invoke(main, ["--embeddings", str(tmp_path / "emb" / "embeddings.npz"), "--bench",
                                         f"x={data}", "--out", str(tmp_path / "rescored")])
    assert rescored.exit_code == 0, rescored.output
    first = json.loads((tmp_path / "report" / "results.json").read_text())["results"]["x"]
    second = json.loads((tmp_path / "rescored" / "results.json").read_text())["results"]["x"]
    assert first["accuracy"] == pytest.approx(second["accuracy"])


def test_an_unreadable_image_is_skipped_and_listed(run, tmp_path):
    data = write_pairs(tmp_path / "set")
    (data / "images" / "id000" / "0001.png").write_bytes(b"")
    (data / "images" / "id001" / "0002.png").write_bytes(b"not an image at all")
    result = _embed("--data", str(data), "--checkpoint", str(run), "--out", str(tmp_path / "emb"), "--flip")
    assert result.exit_code == 0, result.output
    assert "2 unreadable, skipped" in result.output
    meta = json.loads((tmp_path / "emb" / "embed.json").read_text())
    assert [f["path"] for f in meta["failed"]] == ["images/id000/0001.png", "images/id001/0002.png"]
    assert meta["counts"]["embedded"] == meta["counts"]["images"] - 2 and meta["flip"] is True
    assert "images/id000/0001.png" not in load_embeddings(tmp_path / "emb" / "embeddings.npz")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.jpg").write_bytes(b"")
    nothing = _embed("--data", str(empty), "--checkpoint", str(run), "--out", str(tmp_path / "none"))
    assert nothing.exit_code == 1 and nothing.output.startswith("Error: no image could be read")
    assert len(nothing.output.strip().splitlines()) == 1


def test_embed_refuses_an_embeddings_file_and_needs_one_model(run, tmp_path):
    data = write_pairs(tmp_path / "set")
    assert _embed("--data", str(data), "--out", str(tmp_path / "e")).exit_code == 2
    (tmp_path / "e.npz").write_bytes(b"")
    result = _embed("--data", str(data), "--embeddings", str(tmp_path / "e.npz"))
    assert result.exit_code == 2 and "computes embeddings" in result.output


def test_align_embeds_raw_photos_as_align_faces_then_embed_do(lfw_dir, run, tmp_path):
    """Three real LFW photos: --align finds and warps each face in memory; the same as aligning
    them with align-faces (lossless PNG crops) and embedding the crops."""
    from alignment.cli import main as align

    raw = tmp_path / "raw" / "person"
    raw.mkdir(parents=True)
    for source in sorted((lfw_dir / "Aaron_Peirsol").iterdir())[:3]:
        Image.open(source).save(raw / source.with_suffix(".png").name)  # PNG: align-faces' crops stay lossless
    aligned = CliRunner().invoke(align, ["--data", str(tmp_path / "raw"), "--out", str(tmp_path / "aligned"),
                                         "--size", "112x96", "--workers", "0", "--quiet", "--device", "cpu"])
    assert aligned.exit_code == 0, aligned.output
    model = save_untrained(tmp_path / "run96", "lightcnn9", "alob", (112, 96), classes=4)
    direct = _embed("--data", str(tmp_path / "raw"), "--align", "--checkpoint", str(model), "--out",
                    str(tmp_path / "direct"))
    assert direct.exit_code == 0, direct.output
    crops = _embed("--data", str(tmp_path / "aligned"), "--checkpoint", str(model), "--out", str(tmp_path / "crops"))
    assert crops.exit_code == 0, crops.output
    a, b = load_embeddings(tmp_path / "direct" / "embeddings.npz"), load_embeddings(tmp_path / "crops" / "embeddings.npz")
    assert sorted(a) == sorted(b) == [f"person/{p.name}" for p in sorted(raw.iterdir())]
    for path in a:
        np.testing.assert_allclose(a[path], b[path], rtol=1e-5, atol=1e-5)
    raw_only = CliRunner().invoke(main, ["embed", "--data", str(tmp_path / "raw"), "--checkpoint", str(model),
                                         "--out", str(tmp_path / "unaligned"), "--quiet"])
    unaligned = load_embeddings(tmp_path / "unaligned" / "embeddings.npz")
    assert raw_only.exit_code == 0 and not all(np.allclose(unaligned[p], a[p], atol=1e-3) for p in a)
    assert json.loads((tmp_path / "direct" / "embed.json").read_text())["counts"]["no_face"] == 0


def test_load_model_loads_best_like_alob_eval_and_falls_back_to_last(tmp_path):
    run = save_untrained(tmp_path / "run", "lightcnn9", "alob", (40, 32), classes=4, seed=0)
    last, _ = load_model(run)  # no best.pt: last.pt
    other = save_untrained(tmp_path / "other", "lightcnn9", "alob", (40, 32), classes=4, seed=1)
    save_checkpoint(torch.load(other / "checkpoints" / "last.pt", weights_only=True), run / "checkpoints" / "best.pt")
    best, _ = load_model(run)
    explicit_last, _ = load_model(run, "last")
    first = next(iter(last.state_dict()))
    assert torch.equal(best.state_dict()[first], load_model(other)[0].state_dict()[first])
    assert torch.equal(explicit_last.state_dict()[first], last.state_dict()[first])
    assert not torch.equal(best.state_dict()[first], last.state_dict()[first])


def test_device_is_an_option_of_every_evaluation_command(run, tmp_path):
    data = write_pairs(tmp_path / "set")
    result = CliRunner().invoke(main, ["--checkpoint", str(run), "--bench", f"x={data}", "--device", "cpu",
                                       "--out", str(tmp_path / "r"), "--quiet"])
    assert result.exit_code == 0, result.output
    bad = CliRunner().invoke(main, ["--checkpoint", str(run), "--bench", f"x={data}", "--device", "gpu"])
    assert bad.exit_code == 2 and "auto, cpu, cuda or cuda:N" in bad.output
    if not torch.cuda.is_available():
        for args in (["--bench", f"x={data}"], ["embed", "--data", str(data)]):
            missing = CliRunner().invoke(main, [*args, "--checkpoint", str(run), "--device", "cuda",
                                                "--out", str(tmp_path / "none")])
            assert missing.exit_code == 1 and "no CUDA device" in missing.output, missing.output
            assert len(missing.output.strip().splitlines()) == 1
