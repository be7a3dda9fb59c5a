"""alob-doctor: the versions and the device, then one line per part (ok, missing with the command
that installs it, or FAILED); exit 0 when the core works, 1 when it does not."""

from __future__ import annotations

import configparser
import os
import platform
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import torchvision
from click.testing import CliRunner
from conftest import PROJECT_ROOT, ci_strict

from alob_experiment import doctor

OPTIONAL = ["mtcnn", "dlib", "facenet", "onnxruntime", "simplejpeg", "lfw"]
STATUS = re.compile(r"^(\S+) +(ok|missing|FAILED): (.+)$")


@pytest.mark.slow  # converts FaceNet into an empty cache (about 20 s on 2 busy cores)
def test_doctor_reports_every_part_once_and_a_missing_lfw(tmp_path):
    env = dict(os.environ, ALOB_CACHE=str(tmp_path / "cache"), PYTHONPATH=os.pathsep.join(
        [str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "alob_experiment.doctor", "--data", str(tmp_path / "nowhere")],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    first = {line.split()[0]: line.split(maxsplit=1)[1] for line in lines}
    assert len(first) == len(lines)  # one line per name
    assert first["python"].startswith(f"{platform.python_version()} ({sys.executable};")
    assert first["torch"] == torch.__version__ and first["torchvision"] == torchvision.__version__
    assert first["opencv"] == cv2.__version__ and first["numpy"] == np.__version__
    assert first["device"].startswith("cuda (" if torch.cuda.is_available() else "cpu (")
    statuses = {m.group(1): (m.group(2), m.group(3)) for line in lines if (m := STATUS.match(line))}
    assert list(statuses) == ["core", *OPTIONAL], lines
    assert statuses["core"][0] == "ok"
    assert statuses["lfw"] == ("missing", f"no lfw-deepfunneled/ and pairs.txt in {tmp_path / 'nowhere'}; put "
                               "lfw-deepfunneled/ and pairs.txt in $ALOB_DATA/lfw or pass --data (alob-pipeline "
                               "downloads them when online)")
    if ci_strict():  # CI installs every optional part: each must work there
        assert all(statuses[name][0] == "ok" for name in OPTIONAL[:-1]), lines
    assert "Traceback" not in proc.stderr, proc.stderr


def test_ok_missing_and_failed_lines():
    def broken():
        raise RuntimeError("the model file is damaged")

    def absent():
        raise ImportError("No module named 'not_a_module_xyz'")

    assert doctor.report(doctor.Part("good", ("numpy",), "pip install numpy", lambda: "fine")) == "good         ok: fine"
    assert doctor.report(doctor.Part("broken", ("numpy",), "pip install numpy", broken)) == \
        "broken       FAILED: RuntimeError: the model file is damaged"
    assert doctor.report(doctor.Part("absent", ("numpy", "not-a-distribution-xyz"), "pip install xyz", absent)) == \
        "absent       missing: not-a-distribution-xyz not installed; install: pip install xyz"


def test_lfw_is_found_in_alob_data(tmp_path, monkeypatch):
    images = tmp_path / "lfw" / "lfw-deepfunneled"
    for person in ("Ann_A", "Ben_B"):
        (images / person).mkdir(parents=True)
    (tmp_path / "lfw" / "pairs.txt").write_text("1 1\n")
    monkeypatch.setenv("ALOB_DATA", str(tmp_path))
    assert doctor.check_lfw(None) == f"{images} (2 people) and {tmp_path / 'lfw' / 'pairs.txt'}"


def test_a_broken_core_exits_1(monkeypatch):
    def no_torch():
        raise ImportError("No module named 'torch'")

    monkeypatch.setattr(doctor, "check_core", no_torch)
    monkeypatch.setattr(doctor, "parts", lambda lfw_dir: [])
    result = CliRunner().invoke(doctor.main, [])
    assert result.exit_code == 1 and result.output.splitlines()[-1] == \
        "core         FAILED: ImportError: No module named 'torch'", result.output


def test_help_version_and_console_script():
    runner = CliRunner()
    help_text = " ".join(runner.invoke(doctor.main, ["--help"]).output.split())
    assert "Exits 0 when the core works" in help_text and "--data" in help_text
    assert runner.invoke(doctor.main, ["--version"], prog_name="alob-doctor").output.startswith("alob-doctor (alob-toolkit) ")
    config = configparser.ConfigParser()
    config.read(PROJECT_ROOT / "setup.cfg")
    assert "alob-doctor = alob_experiment.doctor:main" in config["options.entry_points"]["console_scripts"]
