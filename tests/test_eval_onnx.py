"""alob-eval --onnx: an ONNX face model made here (torch.onnx export of a tiny network, and a
variant taking BGR NHWC pixels / 255 with a fixed batch of one and two outputs) gives the same
figures as --embeddings holding the vectors computed here by the network itself, on every
benchmark form (occgen pairs.csv folder, aligned folder @ pairs.txt, .bin), with --flip,
--save-embeddings, ar and tsne; the input convention comes from options, the graph's metadata or
the graph; models that do not fit are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from onnx_fixtures import export_tiny, images_of, tiny_vectors, write_bin, write_people

from alob_eval.benchmarks import parse_bench_spec
from alob_eval.cli import main
from alob_eval.embeddings import save_embeddings

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """The people folder (with a pairs.csv too), its pairs.txt, a .bin of its pairs and the two models."""
    root = tmp_path_factory.mktemp("onnx")
    folder, pairs_txt = write_people(root / "people")
    table = parse_bench_spec(f"t={folder}@{pairs_txt}").pairs
    rel = table.assign(path1=[Path(p).relative_to(folder).as_posix() for p in table.path1],
                       path2=[Path(p).relative_to(folder).as_posix() for p in table.path2])
    rel.to_csv(folder / "pairs.csv", index=False)
    return {"folder": folder, "pairs": pairs_txt, "bin": write_bin(root / "people.bin", folder, pairs_txt),
            "tiny": export_tiny(root / "tiny.onnx"), "bgr": export_tiny(root / "tiny-bgr.onnx", "bgr-nhwc")}


def _benches(data: dict) -> list[str]:
    return ["--bench", f"csv={data['folder']}", "--bench", f"txt={data['folder']}@{data['pairs']}",
            "--bench", f"bin={data['bin']}"]


def _expected_embeddings(data: dict, path: Path, flip: bool = False) -> dict[str, np.ndarray]:
    """Every benchmark image's TinyNet vector computed here, written as an embeddings file."""
    benches = [parse_bench_spec(b) for b in _benches(data)[1::2]]
    images = {p: d for b in benches for p, d in b.images.items()}
    paths = list(dict.fromkeys(p for b in benches for p in (*b.pairs.path1, *b.pairs.path2)))
    vectors = tiny_vectors(images_of(paths, images), flip=flip)
    save_embeddings(path, paths, vectors, np.float64)
    return dict(zip(paths, vectors))


def _run(args: list[str], out: Path) -> tuple[dict, str]:
    result = CliRunner().invoke(main, [*args, "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text()), result.output


def _same_figures(a, b, key: str = "") -> bool:
    """Equal figures; thresholds (cosines) may differ by float rounding between runtimes."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_figures(a[k], b[k], k) for k in a)
    if "threshold" in key:
        return bool(np.allclose(a, b, rtol=0, atol=1e-5))
    return a == b


def _saved(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as saved:
        return dict(zip(saved["paths"].tolist(), saved["embeddings"]))


@pytest.mark.slow
def test_onnx_model_scores_as_its_vectors_on_every_benchmark_form(data, tmp_path):
    expected = _expected_embeddings(data, tmp_path / "expected.npz")
    reference, _ = _run(["--embeddings", str(tmp_path / "expected.npz"), *_benches(data)], tmp_path / "emb")
    measured, output = _run(["--onnx", str(data["tiny"]), *_benches(data), "--save-embeddings",
                             str(tmp_path / "onnx.npz"), "--batch-size", "5"], tmp_path / "onnx")
    assert "tiny.onnx: 112x112 RGB NCHW, (x - 127.5) / 127.5, output 'fc1', dynamic batch" in output
    assert measured["meta"]["model"] == "onnx tiny.onnx" and measured["meta"]["backend"].startswith("onnxruntime ")
    assert set(measured["results"]) == {"csv", "txt", "bin"}
    assert _same_figures(measured["results"], reference["results"]), (measured["results"], reference["results"])
    assert measured["results"]["csv"]["accuracy"] == measured["results"]["bin"]["accuracy"] > 0.6
    saved = _saved(tmp_path / "onnx.npz")
    assert sorted(saved) == sorted(expected) and len(saved) > 40  # the .bin's 40 and the folder's
    assert max(np.abs(saved[p] - expected[p]).max() for p in saved) < 1e-4


def test_bgr_nhwc_fixed_batch_model_with_options_and_flip(data, tmp_path):
    _expected_embeddings(data, tmp_path / "expected.npz", flip=True)
    reference, _ = _run(["--embeddings", str(tmp_path / "expected.npz"), "--flip", *_benches(data)], tmp_path / "e")
    options = ["--onnx", str(data["bgr"]), "--onnx-channels", "BGR", "--onnx-mean", "0", "--onnx-std", "255",
               "--onnx-output", "embedding", "--flip", *_benches(data)]
    measured, output = _run(options, tmp_path / "o")
    assert "112x112 BGR NHWC, (x - 0) / 255, output 'embedding', fixed batch 1 (layout: graph" in output
    assert _same_figures(measured["results"], reference["results"])
    swapped = [o if o != "BGR" else "RGB" for o in options]  # the channel option matters
    _run([*swapped, "--save-embeddings", str(tmp_path / "rgb.npz")], tmp_path / "rgb")
    _run([*options, "--save-embeddings", str(tmp_path / "bgr.npz")], tmp_path / "bgr")
    rgb, bgr = _saved(tmp_path / "rgb.npz"), _saved(tmp_path / "bgr.npz")
    assert min(np.abs(rgb[p] - bgr[p]).max() for p in bgr) > 1e-3


def test_metadata_gives_the_convention_and_options_override_it(data, tmp_path):
    from alob_eval.onnx_models import InputConvention, open_onnx_model

    model = onnx.load(str(data["bgr"]))
    wanted = InputConvention((112, 112), "BGR", (0.0,) * 3, (255.0,) * 3, "NHWC", "embedding")
    for key, value in wanted.metadata().items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(tmp_path / "meta.onnx"))
    read = open_onnx_model(tmp_path / "meta.onnx")
    assert read.convention == wanted and read.batch == 1
    assert read.sources == {"layout": "metadata", "input_size": "graph", "channels": "metadata", "mean": "metadata",
                            "std": "metadata", "output": "metadata"}
    assert open_onnx_model(tmp_path / "meta.onnx", channels="RGB").convention.channels == "RGB"
    plain = open_onnx_model(data["tiny"], size="96x80")  # dynamic size: the option gives it
    assert plain.convention.size == (96, 80) and plain.batch is None and plain.sources == {"input_size": "option"}
    assert plain.embedder()(images_of([str(next(data["folder"].glob("P00/*.jpg")))])).shape == (1, 24)


def test_a_graph_that_normalises_itself_gets_mean_0_std_1(tmp_path):
    """insightface's test for models converted from MXNet: Sub and Mul among the first nodes."""
    from onnx import TensorProto, helper

    from alob_eval.onnx_models import open_onnx_model

    nodes = [helper.make_node("Sub", ["data", "m"], ["a"], name="Sub_0"),
             helper.make_node("Mul", ["a", "s"], ["b"], name="Mul_1"),
             helper.make_node("ReduceMean", ["b", "axes"], ["fc1"], name="pool", keepdims=0)]
    inits = [helper.make_tensor("m", TensorProto.FLOAT, [], [127.5]),
             helper.make_tensor("s", TensorProto.FLOAT, [], [0.0078125]),
             helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["n", 3, 112, 112])],
                              [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["n", 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "mx.onnx"))
    model = open_onnx_model(tmp_path / "mx.onnx")
    assert model.convention.mean == (0.0,) * 3 and model.convention.std == (1.0,) * 3
    image = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    expected = (image.astype(np.float64) - 127.5).mean(axis=(0, 1)) * 0.0078125
    assert np.allclose(model.embedder()([image])[0], expected, atol=1e-4)


def test_ar_and_tsne_run_onnx_models(data, tmp_path):
    rng = np.random.default_rng(3)
    ar = tmp_path / "ar"
    ar.mkdir()
    import cv2

    for person in ("m-001", "m-002", "w-001"):
        base = cv2.resize(rng.integers(0, 256, (7, 7, 3)).astype(np.float32), (112, 112))
        for image in range(1, 27):
            cv2.imwrite(str(ar / f"{person}-{image:02d}.bmp"),
                        np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8))
    paths = sorted(str(p) for p in ar.glob("*.bmp"))
    save_embeddings(tmp_path / "ar.npz", paths, tiny_vectors(images_of(paths)))
    outputs = {}
    for name, model in (("onnx", ["--onnx", str(data["tiny"])]), ("emb", ["--embeddings", str(tmp_path / "ar.npz")])):
        result = CliRunner().invoke(main, ["ar", "--data", str(ar), *model, "--out", str(tmp_path / name), "--quiet"])
        assert result.exit_code == 0, result.output
        outputs[name] = json.loads((tmp_path / name / "ar.json").read_text())["results"]
    assert outputs["onnx"] == outputs["emb"] and outputs["onnx"]["1"]["sunglasses"]["probes"] == 18
    result = CliRunner().invoke(main, ["tsne", "--data", str(data["folder"]), "--onnx", str(data["tiny"]),
                                       "--identities", "3", "--per-identity", "3", "--out-file", str(tmp_path / "t.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG" and "1 panel(s)" in result.output


def test_embed_runs_onnx_models(data, tmp_path):
    """alob-eval embed --onnx: the folder's vectors are the network's, keyed by relative path."""
    result = CliRunner().invoke(main, ["embed", "--data", str(data["folder"]), "--onnx", str(data["bgr"]),
                                       "--onnx-channels", "BGR", "--onnx-mean", "0", "--onnx-std", "255",
                                       "--onnx-output", "embedding", "--out", str(tmp_path / "e"), "--quiet"])
    assert result.exit_code == 0, result.output
    saved = _saved(tmp_path / "e" / "embeddings.npz")
    files = sorted(p.relative_to(data["folder"]).as_posix() for p in data["folder"].rglob("*.jpg"))
    assert sorted(saved) == files and len(files) == 24
    expected = tiny_vectors(images_of([str(data["folder"] / f) for f in files]))
    assert max(np.abs(saved[f] - e).max() for f, e in zip(files, expected)) < 1e-4
    meta = json.loads((tmp_path / "e" / "embed.json").read_text())
    assert "tiny-bgr.onnx" in json.dumps(meta) and "onnxruntime" in json.dumps(meta)


def _one_line(result, code: int, text: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and text in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 or code == 2, result.output


def test_models_that_do_not_fit_are_one_line_errors(data, tmp_path):
    from onnx import TensorProto, helper

    (tmp_path / "text.onnx").write_text("not a model")
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "flat.onnx"))
    bench = ["--bench", f"csv={data['folder']}", "--out", str(tmp_path / "r"), "--quiet"]
    run = CliRunner().invoke
    _one_line(run(main, ["--onnx", str(tmp_path / "text.onnx"), *bench]), 1, "not an ONNX model ONNX Runtime can load")
    _one_line(run(main, ["--onnx", str(tmp_path / "flat.onnx"), *bench]), 1, "has shape ['n', 10] (rank 2)")
    _one_line(run(main, ["--onnx", str(data["bgr"]), "--onnx-size", "112x96", *bench]), 1,
              "the graph fixes the input size at 112x112, not 112x96")
    _one_line(run(main, ["--onnx", str(data["tiny"]), "--onnx-output", "feat", *bench]), 1, "no output named 'feat'")
    _one_line(run(main, ["--onnx", str(data["tiny"]), "--onnx-mean", "1,2", *bench]), 1, "three comma-separated")
    _one_line(run(main, ["--onnx", str(data["tiny"]), "--reference", "dlib", *bench]), 2,
              "give exactly one model")
    assert not (tmp_path / "r").exists()
