"""alob-export: a short ALOB run and a short baseline run become ONNX graphs whose embeddings
equal PyTorch's (cosine >= 0.99999 on crops), with a dynamic batch, the stated opset and the
input convention in the metadata; alob-eval --onnx of the export gives alob-eval --checkpoint's
figures; an export that does not reproduce PyTorch is refused and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from onnx_fixtures import images_of, write_people
from train_fixtures import write_folders

from alob_eval import export
from alob_eval.cli import main as eval_main
from alob_eval.onnx_backend import EXPORT_OPSET, min_cosine

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two runs of alob-train, a few steps each on small identity folders (LightCNN-9, 112x96)."""
    from alob_train.cli import main as train_main

    root = tmp_path_factory.mktemp("export")
    data = write_folders(root / "data", classes=4, per_class=4, size=(112, 96))
    found = {}
    for variant in ("alob", "baseline"):
        result = CliRunner().invoke(train_main, ["--data", str(data), "--out", str(root / variant), "--variant",
                                                 variant, "--backbone", "lightcnn9", "--size", "112x96",
                                                 "--batch-size", "8", "--max-steps", "2", "--workers", "0",
                                                 "--quiet", "--no-tensorboard"])
        assert result.exit_code == 0, result.output
        found[variant] = root / variant
    found["people"], found["pairs"] = write_people(root / "people")
    return found


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Each run exported by the command: the file and what the command printed."""
    root = tmp_path_factory.mktemp("exported")
    found = {}
    for variant in ("alob", "baseline"):
        out = root / f"{variant}.onnx"
        result = CliRunner().invoke(export.main, ["--checkpoint", str(runs[variant]), "--out-file", str(out),
                                                  "--data", str(runs["people"]), "--check-images", "12"])
        assert result.exit_code == 0, result.output
        found[variant] = (out, result.output)
    return found


def _torch_vectors(run: Path, images: list[np.ndarray]) -> np.ndarray:
    from alob_train.checkpoint import load_trained
    from alob_train.embed import model_embedder

    model, cfg, _ = load_trained(run)
    return model_embedder(model, tuple(cfg["input_size"]))(images)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["alob", "baseline"])
def test_export_equals_pytorch_and_reads_back_without_options(runs, exported, variant):
    out, output = exported[variant]
    assert f"ONNX opset {EXPORT_OPSET}" in output and "N x 3 x 112 x 96 (any N), RGB, (x - 127.5) / 127.5" in output
    model = onnx.load(str(out))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["alob.input_size"] == "112x96" and props["alob.channels"] == "RGB" and props["alob.layout"] == "NCHW"
    assert props["alob.mean"] == props["alob.std"] == "127.5" and props["alob.output"] == "embedding"
    assert props["alob.variant"] == variant and "/" not in props["alob.model"].split("(")[0]
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [EXPORT_OPSET]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert isinstance(session.get_inputs()[0].shape[0], str)  # a dynamic batch axis
    from alob_eval.onnx_models import _normalised_inside

    assert not _normalised_inside(out)  # so insightface's ArcFaceONNX takes 127.5 / 127.5, not 0 / 1
    # insightface's way of feeding it: RGB, (x - 127.5) / 127.5, NCHW, the size read from the graph
    import cv2

    h, w = session.get_inputs()[0].shape[2:4]
    files = sorted(runs["people"].glob("*/*.jpg"))[:7]
    resized = [cv2.resize(i, (w, h), interpolation=cv2.INTER_AREA) for i in images_of([str(f) for f in files])]
    blob = ((np.stack(resized).astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)
    torch_vectors = _torch_vectors(runs[variant], resized)
    for n in (1, len(resized)):  # one image and several
        onnx_vectors = session.run(None, {"images": np.ascontiguousarray(blob[:n])})[0]
        assert min_cosine(onnx_vectors, torch_vectors[:n]) >= 0.99999
        assert np.abs(_unit(onnx_vectors) - _unit(torch_vectors[:n])).max() < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["alob", "baseline"])
def test_eval_of_the_export_equals_eval_of_the_checkpoint(runs, exported, tmp_path, variant):
    out = exported[variant][0]
    bench = ["--bench", f"lfw={runs['people']}@{runs['pairs']}", "--quiet"]
    figures = {}
    for name, model in (("onnx", ["--onnx", str(out)]), ("checkpoint", ["--checkpoint", str(runs[variant]),
                                                                         "--backend", "torch"])):
        result = CliRunner().invoke(eval_main, [*model, *bench, "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        figures[name] = json.loads((tmp_path / name / "results.json").read_text())["results"]["lfw"]
    for key in ("accuracy", "accuracy_std", "fold_accuracies", "tar_at_far", "pairs"):
        assert figures["onnx"][key] == figures["checkpoint"][key], key
    assert np.allclose(figures["onnx"]["fold_thresholds"], figures["checkpoint"]["fold_thresholds"], atol=1e-5)


@pytest.mark.slow
def test_an_export_that_differs_from_pytorch_is_refused(runs, tmp_path):
    source = export.run_source(runs["alob"])
    other = export.run_source(runs["baseline"])
    crops = export.check_crops(runs["people"], 8)
    wrong = export.ExportSource(source.module, source.size, other.reference, source.name)
    with pytest.raises(export.ExportError, match=r"refused: .*\(min cosine [0-9.]+ < 0\.99999\); nothing written"):
        export.export_onnx(wrong, tmp_path / "x.onnx", crops)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one


def test_export_usage_and_input_errors(runs, tmp_path):
    run = CliRunner().invoke
    result = run(export.main, ["--checkpoint", str(runs["alob"])])
    assert result.exit_code == 2 and "--out-file" in result.output
    result = run(export.main, ["--out-file", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2 and "give exactly one model" in result.output
    result = run(export.main, ["--checkpoint", str(runs["alob"]), "--reference", "facenet", "--out-file",
                               str(tmp_path / "x.onnx")])
    assert result.exit_code == 2 and "give exactly one model" in result.output
    result = run(export.main, ["--checkpoint", str(runs["alob"]), "--out-file", str(tmp_path / "x.pt")])
    assert result.exit_code == 2 and "--out-file must be an .onnx file name" in result.output
    result = run(export.main, ["--checkpoint", str(tmp_path / "nope"), "--out-file", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2 and "does not exist" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(export.main, ["--checkpoint", str(runs["alob"]), "--out-file", str(tmp_path / "x.onnx"), "--data",
                               str(empty)])
    assert result.exit_code == 1 and "no readable face crop" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.onnx").exists()


def test_the_first_positional_form_still_works_with_a_note(runs, tmp_path):
    """``alob-export RUN OUT.onnx --crops DIR`` is ``--checkpoint RUN --out-file OUT.onnx --data DIR``,
    and ``--reference facenet OUT`` takes its one positional as ``--out-file``."""
    empty = tmp_path / "empty"
    empty.mkdir()
    run = CliRunner().invoke
    result = run(export.main, [str(runs["alob"]), str(tmp_path / "x.onnx"), "--crops", str(empty)])
    assert result.exit_code == 1 and f"--data {empty}: no readable face crop" in result.output, result.output
    assert result.output.count("deprecated") == 2 and "use --checkpoint CHECKPOINT --out-file OUT-FILE" in result.output
    result = run(export.main, ["--reference", "facenet", str(tmp_path / "facenet.pt")])
    assert result.exit_code == 2 and "--out-file must be an .onnx file name" in result.output, result.output
    assert "use --out-file OUT-FILE" in result.output


@pytest.mark.slow
def test_pretrained_facenet_exports(runs, tmp_path, monkeypatch):
    pytest.importorskip("alob_train.pretrained")
    monkeypatch.setenv("ALOB_CACHE", str(tmp_path / "cache"))  # converted here, not in the user's cache
    out = tmp_path / "facenet.onnx"
    result = CliRunner().invoke(export.main, ["--reference", "facenet", "--out-file", str(out), "--data",
                                              str(runs["people"]), "--check-images", "6"])
    assert result.exit_code == 0, result.output
    assert "N x 3 x 160 x 160" in result.output and "N x 512" in result.output
    from alob_eval.onnx_models import open_onnx_model

    model = open_onnx_model(out)
    assert model.convention.size == (160, 160) and model.convention.mean == (127.5,) * 3
    assert float(result.output.split("min cosine to PyTorch ")[1].split()[0]) >= 0.99999
    # tighter than the export's own check: FaceNet's (x - 127.5) / 128 must be reproduced exactly
    crops = export.check_crops(runs["people"], 6)
    onnx_vectors, torch_vectors = model.embedder()(crops), export.facenet_source().reference(crops)
    assert np.abs(_unit(onnx_vectors) - _unit(torch_vectors)).max() < 1e-5


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)
