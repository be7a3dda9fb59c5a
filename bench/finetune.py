"""Training throughput of fine-tuning the pretrained FaceNet, baseline and ALOB, side by side.

Each configuration is a real fine-tuning setup (``--init facenet-vggface2`` with its freezing,
learning-rate groups and batch-norm mode, built as ``alob-train`` builds it) stepped on in-memory
batches, so the figure is the model's speed, not the data pipeline's. Configurations alternate
within each repeat, so a load change on a shared machine touches all alike; the median of
``--repeats`` timed runs of ``--steps`` steps is reported, with the ratio of each ALOB row to the
baseline with the same freezing.

    python bench/finetune.py                       # CPU, batch 32, 112x112
    python bench/finetune.py --freeze mixed_7a,none --size 160x160
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from alob_train.config import resolve_config
from alob_train.finetune import apply_freezing, load_init
from alob_train.model import ALOB
from alob_train.optim import build_optimizers


def build(variant: str, freeze: str, shared: bool, args) -> tuple:
    config = resolve_config("paper", {"data": "", "out": "", "backbone": "facenet", "init": "facenet-vggface2",
                                      "variant": variant, "freeze_until": freeze, "shared_trunk": shared,
                                      "input_size": tuple(args.size)})
    torch.manual_seed(0)
    model = ALOB.from_config(config, args.classes)
    load_init(model, config)
    apply_freezing(model, config)
    model = model.to(memory_format=torch.channels_last).train()
    x = torch.randn(args.batch_size, 3, *args.size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, args.classes, (args.batch_size,))
    return model, build_optimizers(model, config), x, y


def run(model, optimizers, x, y, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        out = model(x, y)
        loss = out["loss_f"] + (out["loss_m"] if out["loss_m"] is not None else 0)
        for o in optimizers.values():
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in optimizers.values():
            o.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--freeze", default="mixed_7a,mixed_6a,none", help="--freeze-until values to compare")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=lambda s: [int(v) for v in s.split("x")], default=[112, 112])
    parser.add_argument("--classes", type=int, default=2000, help="CosFace classes (LFW's training half: ~2,100)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = []
    for freeze in args.freeze.split(","):
        configs += [("baseline", freeze, False), ("alob", freeze, False)]
        if freeze != "none":
            configs.append(("alob", freeze, True))
    built = {c: build(*c, args) for c in configs}
    for c in configs:
        run(*built[c], 1)
    rates = {c: [] for c in configs}
    for _ in range(args.repeats):
        for c in configs:
            rates[c].append(args.steps * args.batch_size / run(*built[c], args.steps))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch_size}, "
          f"{args.size[0]}x{args.size[1]}, {args.classes} classes, median of {args.repeats}×{args.steps} steps")
    print("| variant | --freeze-until | shared trunk | samples/s (median) | runs | vs baseline |")
    print("|---|---|---|---|---|---|")
    for c in configs:
        median = statistics.median(rates[c])
        base = statistics.median(rates[("baseline", c[1], False)])
        runs = ", ".join(f"{r:.1f}" for r in rates[c])
        print(f"| {c[0]} | {c[1]} | {'yes' if c[2] else 'no'} | {median:.1f} | {runs} | {median / base:.2f}× |")


if __name__ == "__main__":
    main()
