"""Training throughput of ALOB and its one-network baseline, per backbone, side by side.

Measures optimiser steps on in-memory batches (the model, CosFace over ``--classes`` classes,
L_f + λ·L_m, one backward pass, SGD + Adam), so the number is the model's speed, not the data
pipeline's. Each configuration: warm-up steps, then ``--repeats`` timed runs of ``--steps``
steps; the median samples/s is reported. Configurations alternate within each repeat, so a load
change on a shared machine touches all of them alike.

    python bench/train.py                                   # CPU, batch 32, 112x96
    python bench/train.py --device cuda --amp bf16 --batch-size 256 --compile both

Each row also gives the training FLOPs per sample (forward + backward, counted by
``torch.utils.flop_counter`` on a batch of 2) and the fraction of ``--peak-tflops`` that the
measured rate uses (400 by default: what an H100/H200 delivers in dense bf16 in practice).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from contextlib import nullcontext

import torch

from alob_train.config import TrainConfig
from alob_train.model import ALOB
from alob_train.optim import build_optimizers


def make(backbone: str, variant: str, args) -> tuple[ALOB, dict, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = ALOB(args.classes, backbone, variant, tuple(args.size)).to(args.device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    config = TrainConfig(data="", out="", lr_trimmer=0.01, lr_identifier=0.001)
    x = torch.randn(args.batch_size, 3, *args.size, device=args.device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, args.classes, (args.batch_size,), device=args.device)
    return model, build_optimizers(model, config), x, y


def steps(model, optimizers, x, y, n: int, amp: torch.dtype | None, device: str) -> float:
    """Run ``n`` training steps; return the seconds they took."""
    kind = torch.device(device).type
    if kind == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        with torch.autocast(kind, dtype=amp) if amp else nullcontext():
            out = model(x, y)
        loss = out["loss_f"] + (out["loss_m"] if out["loss_m"] is not None else 0)
        for o in optimizers.values():
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in optimizers.values():
            o.step()
    if kind == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def flops_per_sample(backbone: str, variant: str, args) -> float:
    """Training FLOPs (forward + backward) of one sample, counted on a batch of 2 on the CPU."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = ALOB(args.classes, backbone, variant, tuple(args.size))
    x = torch.randn(2, 3, *args.size)
    y = torch.randint(0, args.classes, (2,))
    with FlopCounterMode(display=False) as counter:
        out = model(x, y)
        (out["loss_f"] + (out["loss_m"] if out["loss_m"] is not None else 0)).backward()
    return counter.get_total_flops() / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="resnet18,lightcnn9,iresnet18")
    parser.add_argument("--variants", default="baseline,alob")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=lambda s: [int(v) for v in s.split("x")], default=[112, 96])
    parser.add_argument("--classes", type=int, default=10572, help="CosFace classes (CASIA-WebFace has 10,572)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compile", choices=["off", "on", "both"], default="off",
                        help="torch.compile the model (both: each configuration with and without)")
    parser.add_argument("--peak-tflops", type=float, default=400.0,
                        help="the device's practical dense TFLOP/s, for the fraction-of-ceiling column")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    amp = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    compiled = {"off": (False,), "on": (True,), "both": (False, True)}[args.compile]
    configs = [(b, v, c) for b in args.backbones.split(",") for v in args.variants.split(",") for c in compiled]
    built = {}
    for b, v, c in configs:
        model, optimizers, x, y = make(b, v, args)
        built[(b, v, c)] = (torch.compile(model) if c else model, optimizers, x, y)
    for c in configs:
        steps(*built[c], args.warmup, amp, args.device)
    rates: dict[tuple[str, str, bool], list[float]] = {c: [] for c in configs}
    for _ in range(args.repeats):
        for c in configs:
            rates[c].append(args.steps * args.batch_size / steps(*built[c], args.steps, amp, args.device))
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"device {args.device} ({device}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"batch {args.batch_size}, {args.size[0]}x{args.size[1]}, {args.classes} classes, amp {args.amp}, "
          f"channels_last {args.channels_last}, median of {args.repeats}×{args.steps} steps")
    print("| backbone | variant | torch.compile | samples/s (median) | GFLOP/sample | fraction of ceiling |")
    print("|---|---|---|---|---|---|")
    results = []
    for b, v, c in configs:
        median = statistics.median(rates[(b, v, c)])
        flops = flops_per_sample(b, v, args)
        fraction = median * flops / (args.peak_tflops * 1e12)
        print(f"| {b} | {v} | {'on' if c else 'off'} | {median:.1f} | {flops / 1e9:.2f} | {fraction:.2%} |")
        results.append({"backbone": b, "variant": v, "compile": c, "samples_per_s": median, "all": rates[(b, v, c)],
                        "flops_per_sample": flops, "fraction_of_peak": fraction})
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "device": device, "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
