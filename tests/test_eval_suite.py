"""alob-eval suite over two small .bin sets and one aligned folder set with two ONNX models made
here: every set × scenario × model row is present and equals alob-eval on the same benchmark;
the paired differences are the per-fold ones; the occgen builds are cached and reused (no
rebuild, no recomputation on a second run); a changed occlusion setting rebuilds; an interrupted
suite resumes and ends with the uninterrupted suite's table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from onnx_fixtures import export_tiny, write_bin, write_people

from alob_eval import suite_cli
from alob_eval.cli import main

pytest.importorskip("onnxruntime")
SCENARIOS = ["clean", "occ-2.0", "occ-3.0", "masked"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("suite")
    bins = root / "bins"
    bins.mkdir()
    for seed, name in ((1, "alpha"), (2, "beta")):
        folder, pairs = write_people(root / f"people-{name}", seed=seed)
        write_bin(bins / f"{name}.bin", folder, pairs)
    folder, pairs = write_people(root / "people", people=6, seed=3)
    return {"bins": bins, "folder": folder, "pairs": pairs, "a": export_tiny(root / "a.onnx", seed=0),
            "b": export_tiny(root / "b.onnx", seed=5)}


def _suite(inputs: dict, out: Path, *extra: str):
    args = ["suite", "--set", str(inputs["bins"]), "--set", f"faces={inputs['folder']}@{inputs['pairs']}",
            "--onnx", f"A={inputs['a']}", "--onnx", f"B={inputs['b']}", "--out", str(out), "--quiet", "--workers", "0",
            *extra]
    return CliRunner().invoke(main, args)


def _figures(args: list[str], out: Path) -> dict:
    result = CliRunner().invoke(main, [*args, "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text())["results"]


@pytest.fixture(scope="module")
def first(inputs, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("first") / "report"
    result = _suite(inputs, out)
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.mark.slow
def test_every_row_present_and_equal_to_alob_eval(inputs, first, tmp_path):
    out, output = first
    table = pd.read_csv(out / "suite.csv")
    keys = set(zip(table.set, table.scenario, table.model))
    assert keys == {(s, c, m) for s in ("alpha", "beta", "faces") for c in SCENARIOS for m in "AB"} and len(table) == 24
    assert {"tar@far=0.001", "tar@far=0.0001", "accuracy_std", "pairs"} <= set(table.columns)
    for name in ("suite.md", "suite.png", "suite.json", "differences.csv"):
        assert (out / name).is_file(), name
    assert "| alpha | occ-3.0 | 20 |" in (out / "suite.md").read_text()
    benches = ["--bench", f"clean={inputs['bins'] / 'beta.bin'}", "--bench", f"occ={out / 'sets/beta/occ-3.0'}",
               "--bench", f"masked={inputs['folder']}@{inputs['pairs']}", "--bench", f"fm={out / 'sets/faces/masked'}"]
    direct = {m: _figures(["--onnx", str(inputs[m.lower()]), *benches], tmp_path / m) for m in "AB"}
    for model in "AB":
        for bench, (set_name, scenario) in {"clean": ("beta", "clean"), "occ": ("beta", "occ-3.0"),
                                            "masked": ("faces", "clean"), "fm": ("faces", "masked")}.items():
            row = table[(table.set == set_name) & (table.scenario == scenario) & (table.model == model)].iloc[0]
            assert row.accuracy == pytest.approx(direct[model][bench]["accuracy"], abs=1e-12), (model, bench)
            assert row["tar@far=0.001"] == pytest.approx(direct[model][bench]["tar_at_far"]["0.001"]["tar"], abs=1e-12)
    diffs = pd.read_csv(out / "differences.csv")
    row = diffs[(diffs.set == "beta") & (diffs.scenario == "occ-3.0")].iloc[0]
    per_fold = np.subtract(direct["B"]["occ"]["fold_accuracies"], direct["A"]["occ"]["fold_accuracies"])
    assert row.model == "B" and row.versus == "A" and row.accuracy_difference == pytest.approx(per_fold.mean())
    assert row.ci95_low < row.accuracy_difference < row.ci95_high and len(diffs) == 12


@pytest.mark.slow
def test_builds_carry_their_settings(first):
    out, _ = first
    occ = json.loads((out / "sets" / "alpha" / "occ-2.0" / "dataset.json").read_text())
    assert occ["settings"]["occlusion"]["factor"] == 2.0 and occ["settings"]["occlusion"]["blend"] == "rect"
    assert occ["complete"] and occ["counts"]["occluded"] == 40
    masked = json.loads((out / "sets" / "faces" / "masked" / "dataset.json").read_text())
    assert masked["settings"]["kind"] == "mask" and masked["settings"]["source"] == "lfw"
    record = json.loads((out / "sets" / "faces" / "masked.json").read_text())
    assert record["settings"] == masked["settings"] and record["source"].endswith("people")


@pytest.mark.slow
def test_second_run_reuses_builds_and_results_then_a_changed_setting_rebuilds(inputs, first, tmp_path):
    import shutil

    out = tmp_path / "moved" / "report"  # one level deeper: the pair list's path relative to each build changes
    shutil.copytree(first[0], out)  # a suite report is relocatable: its cache works where it is copied
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "sets" in p.parts}
    result = _suite(inputs, out)
    assert result.exit_code == 0, result.output
    assert result.output.count(": reused (") == 9 and result.output.count("finished before, kept") == 6
    assert "  embedding " not in result.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert pd.read_csv(out / "suite.csv").equals(pd.read_csv(first[0] / "suite.csv"))
    rescored = _suite(inputs, out, "--far", "0.05", "--tar-convention", "fold")  # from the stored pair scores
    assert rescored.exit_code == 0, rescored.output
    assert rescored.output.count("finished before, kept") == 6 and "  embedding " not in rescored.output
    direct = _figures(["--onnx", str(inputs["a"]), "--bench", f"occ={out / 'sets/beta/occ-3.0'}", "--far", "0.05",
                       "--tar-convention", "fold"], tmp_path / "direct")["occ"]
    table = pd.read_csv(out / "suite.csv")
    row = table[(table.set == "beta") & (table.scenario == "occ-3.0") & (table.model == "A")].iloc[0]
    assert row["tar@far=0.05"] == pytest.approx(direct["tar_at_far"]["0.05"]["tar"], abs=1e-12)
    assert row.accuracy == pytest.approx(direct["accuracy"], abs=1e-12) and "tar@far=0.001" not in table.columns
    changed = _suite(inputs, out, "--seed", "1")
    assert changed.exit_code == 0, changed.output
    assert changed.output.count(": rebuilt (") == 9 and "finished before" not in changed.output
    occ = json.loads((out / "sets" / "alpha" / "occ-3.0" / "dataset.json").read_text())
    assert occ["seed"] == 1 and occ["settings"]["seed"] == 1
    manifest = pd.read_csv(out / "sets" / "alpha" / "occ-3.0" / "manifest.csv")
    old = pd.read_csv(first[0] / "sets" / "alpha" / "occ-3.0" / "manifest.csv")
    assert len(manifest) == len(old) and (manifest.x.values != old.x.values).any()  # redrawn, not mixed


def test_an_interrupted_suite_resumes(inputs, first, tmp_path, monkeypatch):
    out = tmp_path / "report"
    real, calls = suite_cli._measure, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(suite_cli, "_measure", interrupted)
    result = _suite(inputs, out)
    assert result.exit_code == 130 and "rerun the same command to resume" in result.output
    assert len(list((out / "results").rglob("*.json"))) == 2 and not (out / "suite.csv").exists()
    monkeypatch.setattr(suite_cli, "_measure", real)
    resumed = _suite(inputs, out)
    assert resumed.exit_code == 0, resumed.output
    assert resumed.output.count("finished before, kept") == 2 and resumed.output.count(": reused (") == 9
    assert pd.read_csv(out / "suite.csv").equals(pd.read_csv(first[0] / "suite.csv"))


def test_suite_input_errors(inputs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    run = CliRunner().invoke
    bad = run(main, ["suite", "--set", str(empty), "--onnx", str(inputs["a"]), "--out", str(tmp_path / "r")])
    assert bad.exit_code == 1 and "no verification .bin files in this folder" in bad.output
    (tmp_path / "junk.bin").write_bytes(b"\x80\x04junk")
    bad = run(main, ["suite", "--set", str(tmp_path / "junk.bin"), "--onnx", str(inputs["a"]), "--out",
                     str(tmp_path / "r"), "--quiet"])
    assert bad.exit_code == 1 and "junk.bin" in bad.output and "Traceback" not in bad.output
    bad = run(main, ["suite", "--set", str(inputs["bins"]), "--out", str(tmp_path / "r")])
    assert bad.exit_code == 1 and "give at least one model" in bad.output
    bad = run(main, ["suite", "--set", str(inputs["bins"]), "--onnx", f"A={inputs['a']}", "--onnx",
                     f"A={inputs['b']}", "--out", str(tmp_path / "r")])
    assert bad.exit_code == 1 and "two models are named A" in bad.output
    bad = run(main, ["suite", "--set", str(inputs["bins"]), "--reference", "x=vgg", "--out", str(tmp_path / "r")])
    assert bad.exit_code == 2 and "the reference models are" in bad.output
