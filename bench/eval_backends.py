"""Benchmark: ways to run a ResNet18 checkpoint's embedding on CPU, side by side on the same
random 112x96 batches (no image decoding): the torch backend as ``alob-eval`` runs it (BatchNorms
folded, channels_last, eager), the same model traced into one frozen TorchScript graph (both ALOB
backbones and the projection together), ONNX Runtime at several batch sizes and thread settings,
and OpenVINO on the same ONNX graph when ``openvino`` is importable. Rounds are interleaved (every
configuration once per round); the table gives medians, images/s, the speed relative to the torch
backend and the smallest per-image cosine to it.
Usage:

    python bench/eval_backends.py [--variants alob,baseline] [--images 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from alob_eval.onnx_backend import export_graph, min_cosine, onnx_session
from alob_train.checkpoint import load_model, save_untrained
from alob_train.embed import fuse_conv_bn

Run = Callable[[np.ndarray], np.ndarray]


def torch_runs(model: torch.nn.Module, example: torch.Tensor) -> dict[str, Run]:
    """The eager torch backend and the traced, frozen one-graph variant of it."""
    class Embedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model.embed(x)

    with torch.inference_mode():
        traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(Embedding().eval(), example)))

    def eager(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.embed(torch.from_numpy(x).contiguous(memory_format=torch.channels_last)).numpy()

    def graph(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return traced(torch.from_numpy(x).contiguous(memory_format=torch.channels_last)).numpy()

    return {"torch eager (alob-eval's torch backend)": eager, "torch traced + frozen, one graph": graph}


def ort_runs(path: Path, cores: int) -> dict[str, Run]:
    """ONNX Runtime sessions: the backend's (intra-op threads = cores, no spinning), one thread,
    the two backbones as parallel branches (inter-op), and with spinning threads."""
    import onnxruntime as ort

    def session(intra: int, inter: int = 1, parallel: bool = False, spin: bool = False):
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = intra, inter
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        made = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda x: made.run(None, {"images": x})[0]

    backend = onnx_session(path, cores)
    return {f"onnxruntime, {cores} intra-op threads (alob-eval's onnx backend)":
            lambda x: backend.run(None, {"images": x})[0],
            "onnxruntime, 1 thread": session(1),
            f"onnxruntime, 1 intra x {cores} inter-op threads (parallel branches)": session(1, cores, parallel=True),
            f"onnxruntime, {cores} threads, spinning": session(cores, spin=True)}


def openvino_runs(path: Path, cores: int) -> dict[str, Run]:
    """OpenVINO's CPU plugin on the same graph, float32, when the package is importable."""
    try:
        import openvino as ov
    except ImportError:
        return {}
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": cores,
                                                          "INFERENCE_PRECISION_HINT": "f32",
                                                          "PERFORMANCE_HINT": "LATENCY"})
    return {f"openvino {ov.__version__}, {cores} threads, f32": lambda x: compiled(x)[0]}


def time_round(run: Run, images: np.ndarray, batch: int) -> tuple[float, np.ndarray]:
    """Seconds to embed all ``images`` in batches of ``batch``, and the embeddings."""
    start = time.perf_counter()
    out = np.concatenate([run(images[k : k + batch]) for k in range(0, len(images), batch)])
    return time.perf_counter() - start, out


def bench_variant(variant: str, tmp: Path, images: np.ndarray, rounds: int, cores: int) -> list[tuple]:
    """Rows (configuration, batch, median s, images/s, relative speed, min cosine) for one model."""
    model, cfg = load_model(save_untrained(tmp / variant, "resnet18", variant, (112, 96)), "last")
    fast = fuse_conv_bn(model).to(memory_format=torch.channels_last)
    export_graph(fast, (112, 96), tmp / f"{variant}.onnx")
    runs = {**torch_runs(fast, torch.from_numpy(images[:64])), **ort_runs(tmp / f"{variant}.onnx", cores),
            **openvino_runs(tmp / f"{variant}.onnx", cores)}
    configs = [(name, 64) for name in runs]
    backend = next(name for name in runs if "onnx backend" in name)
    configs += [(backend, b) for b in (16, 32, 128)] + [("torch eager (alob-eval's torch backend)", 128)]
    times: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    cosines: dict[tuple[str, int], float] = {}
    reference = time_round(runs[configs[0][0]], images, 64)[1]  # also warms every library up
    for _ in range(rounds):
        for name, batch in configs:
            seconds, out = time_round(runs[name], images, batch)
            times[(name, batch)].append(seconds)
            cosines[(name, batch)] = min_cosine(out, reference)
    base = statistics.median(times[configs[0]])
    rows = []
    for name, batch in configs:
        median = statistics.median(times[(name, batch)])
        rows.append((name, batch, median, len(images) / median, base / median, cosines[(name, batch)]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="alob,baseline")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(cores)
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, size=(args.images, 3, 112, 96)).astype(np.float32)
    print(f"{args.images} random 112x96 images, {args.rounds} interleaved rounds, {cores} cores, "
          f"torch {torch.__version__}; load average at the start: "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        table = {variant: bench_variant(variant, Path(tmp), images, args.rounds, cores)
                 for variant in args.variants.split(",")}
    print(f"load average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}\n")
    print("| model | configuration | batch | seconds (median) | images/s | vs torch eager | min cosine vs torch |")
    print("|---|---|---|---|---|---|---|")
    for variant, rows in table.items():
        for name, batch, median, rate, speed, cosine in rows:
            print(f"| ResNet18 {variant} | {name} | {batch} | {median:.2f} | {rate:.0f} | {speed:.2f}x | {cosine:.7f} |")


if __name__ == "__main__":
    main()
