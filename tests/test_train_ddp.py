"""DDP: two CPU processes (gloo, under torchrun) train a few steps, each on its own half of the
shards, and agree."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from train_fixtures import write_shards

from alob_train.checkpoint import load_checkpoint

PROJECT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, os, sys, torch
import alob_train.data
from alob_train.config import TrainConfig
from alob_train.engine import train
data, out, record = sys.argv[1], sys.argv[2], sys.argv[3]
rank = int(os.environ["RANK"])
writes, read = [], []
shard_item = alob_train.data.shard_item


def recording_shard_item(sample, *args, **kwargs):
    # every sample this process reads from the shards, as shard/key
    read.append(os.path.basename(sample["__shard__"]) + "/" + sample["__key__"])
    return shard_item(sample, *args, **kwargs)


alob_train.data.shard_item = recording_shard_item


def audit(event, args):
    # every file this process creates, opens for writing or renames, and every folder it makes, in out
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        mode, flags = args[1] or "", args[2] or 0
        if any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            writes.append(os.fsdecode(args[0]))
    elif event == "os.rename":  # os.replace too: source and target
        writes.extend([os.fsdecode(args[0]), os.fsdecode(args[1])])
    elif event == "os.mkdir":
        writes.append(os.fsdecode(args[0]))


sys.addaudithook(audit)
config = TrainConfig(data=data, out=out, backbone="lightcnn9", variant="alob", batch_size=4, epochs=1,
                     max_steps=3, workers=0, lr_trimmer=0.01, lr_identifier=0.001, log_every=1,
                     tensorboard=False, progress=False, threads=1)
summary = train(config)
mine = sorted({w for w in writes if os.path.abspath(w).startswith(os.path.abspath(out))})
params = {k: v.detach() for k, v in summary["model"].named_parameters()}
torch.save(params, os.path.join(record, f"rank{rank}.pt"))
with open(os.path.join(record, f"rank{rank}.json"), "w") as fh:
    json.dump({"writes": mine, "read": read}, fh)
"""


@pytest.mark.slow
def test_two_gloo_processes_agree_on_weights_and_only_rank0_writes(tmp_path):
    data = write_shards(tmp_path / "data", classes=4, per_class=6, shards=4)
    out, record = tmp_path / "run", tmp_path / "record"
    record.mkdir()
    script = tmp_path / "ddp_script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PROJECT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script), str(data), str(out), str(record)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rank0, rank1 = (torch.load(record / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    # parameters agree (gradients are averaged); BN running statistics are each rank's own until
    # DDP broadcasts rank 0's at the next forward, so only parameters are compared
    assert len(rank0) > 40
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=1e-6, msg=key)
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["step"] == 3
    for key in rank0:
        assert torch.equal(state["model"][key], rank0[key])
    # 24 samples over 2 processes × batch 4: 3 steps per epoch, each process its own half:
    # two of the four shards each, every sample read once by one process
    assert (out / "metrics.csv").read_text().count("\n") == 4
    records = {r: json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1)}
    read = {r: records[r]["read"] for r in (0, 1)}
    assert len(read[0]) == len(read[1]) == 12 and not set(read[0]) & set(read[1])
    assert len(set(read[0]) | set(read[1])) == 24
    shards = {r: {k.split("/")[0] for k in read[r]} for r in (0, 1)}
    assert len(shards[0]) == len(shards[1]) == 2 and not shards[0] & shards[1]
    # rank 0 writes the run folder; rank 1 writes nothing there
    written = {r: records[r]["writes"] for r in (0, 1)}
    assert written[1] == []
    names = {Path(w).name for w in written[0]}
    assert {"run.json", "metrics.csv", "last.pt", "epoch_001.pt"} <= names, names


@pytest.mark.slow
def test_too_many_bad_samples_in_one_process_stops_every_process(tmp_path):
    """One process's shard holds only bad samples: it passes --max-bad-samples at its first batch,
    and both processes stop at once (none left waiting in a collective), with one line naming the
    process and the cause."""
    data = write_shards(tmp_path / "data", classes=4, per_class=6, shards=2, broken=(1,))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PROJECT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "alob_train.cli",
           "--data", str(data), "--out", str(tmp_path / "run"), "--backbone", "lightcnn9", "--batch-size", "4",
           "--epochs", "1", "--workers", "0", "--max-bad-samples", "2", "--threads", "1", "--quiet", "--no-tensorboard"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output[-3000:]
    assert re.fullmatch(r"Error: process [01] of 2 stopped the run: 4 bad training samples, more than "
                        r"--max-bad-samples 2 \(the first: train-000001\.tar/id\d+/img\d+: unreadable image .*\); "
                        r"repair or remove them, or raise --max-bad-samples", errors[0]), errors[0]
    # no traceback from the training processes; torchrun itself reports the failed children with its
    # own (the launcher's ChildFailedError), whatever they printed
    assert not re.search(r'File "[^"]*(alob_train|alob_common)', output), output[-3000:]
    assert output.count("Traceback") == output.count("ChildFailedError:") == 1, output[-3000:]
