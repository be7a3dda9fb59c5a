"""``alob-eval --backend onnx``: a checkpoint's embedding run by ONNX Runtime on the CPU.

The model's test-time embedding (:meth:`alob_train.model.ALOB.embed`: for ALOB both backbones and
the feature projection, in one graph) is exported once to ONNX from the same BatchNorm-folded
model the torch backend runs, and cached under :func:`cache_dir` in a file named by the
checkpoint's SHA-256 (a retrained or edited checkpoint gets a new file, so a cached graph is never
stale; files are written atomically). Each time a graph is loaded its embeddings are compared with
the torch model's on a few probe images, and a graph that disagrees (cosine below
:data:`MIN_COSINE`) is exported again or refused. The session runs one thread per available core
with every graph optimisation on. Images are preprocessed by :func:`alob_train.embed.model_inputs`
for both backends, so both see the same pixels.

ONNX Runtime, onnx and onnxscript (the exporter) are the optional ``[onnx]`` extra; without them
:func:`require_onnx` raises :class:`BackendUnavailable` naming the pip command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from alob_common.atomic import write_bytes_atomic
from alob_common.digests import file_sha256
from alob_common.errors import UserError
from alob_common.verification import Embedder

if TYPE_CHECKING:  # torch is imported when a model is exported or run, so that `alob-eval --help` stays quick
    import torch

BACKENDS = ("auto", "torch", "onnx")
AUTO_MIN_IMAGES = 1000  # auto picks onnx from this many images: the one-time export (seconds) is repaid
EXPORT_FORMAT = 1  # bump when the exported graph changes, so older cached files are not reused
MIN_COSINE = 0.9999  # per-image agreement with the torch backend a graph must reach to be used
INSTALL_HINT = "pip install 'alob-toolkit[onnx]' (or: pip install onnx onnxruntime onnxscript)"


class BackendUnavailable(UserError):
    """The ONNX backend cannot be used: its packages are missing, or the graph cannot be exported
    or does not reproduce the torch embedding. The message is one line."""


def require_onnx() -> Any:
    """Import and return ``onnxruntime`` (checking the exporter's ``onnx`` and ``onnxscript`` too)."""
    try:
        import onnx  # noqa: F401  (needed by the exporter)
        import onnxruntime
        import onnxscript  # noqa: F401  (needed by the exporter)
    except ImportError as err:
        missing = getattr(err, "name", None) or "onnxruntime"
        raise BackendUnavailable(f"--backend onnx needs ONNX Runtime ({missing} is not installed): "
                                 f"{INSTALL_HINT}") from None
    return onnxruntime


def onnx_available() -> bool:
    """Whether :func:`require_onnx` would succeed."""
    try:
        require_onnx()
    except BackendUnavailable:
        return False
    return True


def resolve_backend(backend: str, images: int) -> str:
    """The backend ``--backend`` names; ``auto``: onnx when its packages are installed and at least
    :data:`AUTO_MIN_IMAGES` images are to be embedded, else torch."""
    if backend != "auto":
        return backend
    return "onnx" if images >= AUTO_MIN_IMAGES and onnx_available() else "torch"


def cache_dir() -> Path:
    """Where exported graphs are kept: ``$ALOB_CACHE/onnx``, else ``$XDG_CACHE_HOME/alob-toolkit/onnx``
    (``~/.cache/alob-toolkit/onnx``)."""
    if os.environ.get("ALOB_CACHE"):
        return Path(os.environ["ALOB_CACHE"]) / "onnx"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "alob-toolkit" / "onnx"


def cached_graph_path(checkpoint: str | Path, folder: Path | None = None) -> Path:
    """The cache file of a checkpoint's graph: its content hash, the exporter format and torch version."""
    import torch

    torch_version = torch.__version__.split("+")[0]
    name = f"{file_sha256(checkpoint)[:32]}-f{EXPORT_FORMAT}-torch{torch_version}.onnx"
    return (folder or cache_dir()) / name


EXPORT_OPSET = 20  # the ONNX opset of every exported graph (ONNX Runtime >= 1.17 runs it)


def export_module(module: torch.nn.Module, input_size: tuple[int, int]) -> Any:
    """Export ``module`` (its forward maps an image batch N x 3 x H x W to embeddings; eval mode)
    as an ONNX ``ModelProto`` with input ``images`` (any batch size), output ``embedding`` and opset
    :data:`EXPORT_OPSET`. The one exporter of the project: the cached graphs of ``--backend onnx``
    and ``alob-export`` both come from here."""
    import torch

    require_onnx()
    example = torch.zeros(2, 3, *input_size)
    try:
        program = torch.onnx.export(module.eval(), (example,), input_names=["images"], output_names=["embedding"],
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=EXPORT_OPSET,
                                    dynamo=True, external_data=False, optimize=True, verbose=False)
        return program.model_proto
    except Exception as err:  # the exporter raises many types; the torch backend still works
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise BackendUnavailable(f"cannot export the model to ONNX ({first}); --backend torch does not need it") from None


def embedding_module(model: torch.nn.Module) -> torch.nn.Module:
    """A module whose forward is ``model.embed``, the test-time embedding (what is exported)."""
    import torch

    class Embedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.model.embed(images)

    return Embedding().eval()


def export_graph(model: torch.nn.Module, input_size: tuple[int, int], path: str | Path) -> None:
    """Export ``model.embed`` (eval mode, any batch size) to an ONNX file written atomically at ``path``."""
    data = export_module(embedding_module(model), input_size).SerializeToString()
    try:
        write_bytes_atomic(path, data)
    except OSError as err:
        raise BackendUnavailable(f"cannot write the ONNX graph to {path}: {err.strerror or err} "
                                 "(set ALOB_CACHE to a writable folder)") from None


def onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for the graph at ``path``: ``threads`` intra-op threads (default:
    the cores this process may use), one inter-op thread, all graph optimisations, and idle threads
    that sleep instead of spinning (as fast on a quiet machine, faster on a busy one:
    docs/BENCHMARKS.md)."""
    ort = require_onnx()
    options = ort.SessionOptions()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    options.intra_op_num_threads = threads or cores
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _session_or_none(path: Path, threads: int | None) -> Any:
    """The session of a graph file, or None when ONNX Runtime cannot load it (a damaged file)."""
    try:
        return onnx_session(path, threads)
    except Exception:  # onnxruntime's own exception types (invalid protobuf, graph errors ...)
        return None


def session_embedder(session: Any, input_size: tuple[int, int]) -> Embedder:
    """An :data:`Embedder` running ``session`` on the images preprocessed as for the torch model."""
    from alob_train.embed import model_inputs

    name = session.get_inputs()[0].name

    def embed(images: Sequence[np.ndarray]) -> np.ndarray:
        return session.run(None, {name: model_inputs(images, input_size).numpy()})[0]

    return embed


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest row-wise cosine similarity between two (N, D) arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return float(((a * b).sum(axis=1) / norms).min())


def _agrees(session: Any, reference: Embedder, input_size: tuple[int, int], rng: np.random.Generator) -> float:
    """Min cosine between the graph's and the torch model's embeddings of random probe images."""
    probes = [rng.integers(0, 256, size=(*input_size, 3), dtype=np.uint8) for _ in range(3)]
    return min_cosine(session_embedder(session, input_size)(probes), reference(probes))


def checkpoint_onnx_embedder(model: torch.nn.Module, input_size: tuple[int, int], checkpoint: str | Path,
                             reference: Embedder, rng: np.random.Generator,
                             threads: int | None = None) -> tuple[Embedder, str]:
    """The ONNX Runtime embedder of a checkpoint's (BatchNorm-folded) ``model``, from the cached
    graph or a fresh export, checked against the torch embedder ``reference`` on probe images
    drawn from ``rng``; returns it and a description of the backend."""
    ort = require_onnx()
    path = cached_graph_path(checkpoint)
    session = _session_or_none(path, threads) if path.is_file() else None
    if session is None or _agrees(session, reference, input_size, rng) < MIN_COSINE:
        export_graph(model, input_size, path)  # none cached, or an unreadable or wrong file: export again
        session = _session_or_none(path, threads)
        if session is None:
            raise BackendUnavailable(f"ONNX Runtime cannot load the exported graph {path}; "
                                     "--backend torch does not need it")
        cosine = _agrees(session, reference, input_size, rng)
        if cosine < MIN_COSINE:
            raise BackendUnavailable(f"the exported ONNX graph does not reproduce the torch embedding (cosine "
                                     f"{cosine:.6f} < {MIN_COSINE}); --backend torch does not need it")
    threads_used = session.get_session_options().intra_op_num_threads
    return session_embedder(session, input_size), f"onnxruntime {ort.__version__} ({threads_used} threads)"
