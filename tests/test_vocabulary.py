"""One vocabulary across the commands (docs/USAGE.md, "Vocabulary"): every command and
sub-command of every console script (found in setup.cfg, so commands added later are checked
too) answers --version, every option has help text, the options the table names exist where it
says, nowhere else, with the stated defaults; old spellings still work with one deprecation
line; sizes are accepted as 112x96 and 112×96; lists have one syntax."""

from __future__ import annotations

import configparser
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from alob_common.vocabulary import VocabCommand, parse_list, rewrite_args

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def console_scripts() -> dict[str, click.Command]:
    """Every console script of setup.cfg, by name, as its click command."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    scripts = {}
    for line in config["options.entry_points"]["console_scripts"].strip().splitlines():
        name, _, target = (part.strip() for part in line.partition("="))
        module, _, attribute = target.partition(":")
        scripts[name] = getattr(importlib.import_module(module), attribute)
    return scripts


def all_commands() -> dict[str, click.Command]:
    """``"alob-eval embed"`` → the command, for every command and sub-command."""
    found = {}

    def walk(path: str, command: click.Command) -> None:
        found[path] = command
        for name, sub in getattr(command, "commands", {}).items():
            walk(f"{path} {name}", sub)

    for name, command in console_scripts().items():
        walk(name, command)
    return found


COMMANDS = all_commands()


def _options(command: click.Command) -> dict[str, click.Option]:
    return {name: p for p in command.params if isinstance(p, click.Option) and not p.hidden
            for name in (*p.opts, *p.secondary_opts) if name.startswith("--")}


def _table(heading: str, first_column: str) -> list[dict[str, str]]:
    """The rows of the first table after ``heading`` in docs/USAGE.md whose first column is ``first_column``."""
    text = (ROOT / "docs" / "USAGE.md").read_text()
    start = text.index(heading)
    lines = [line for line in text[start:].splitlines() if line.startswith("|")]
    lines = lines[lines.index(next(line for line in lines if line.startswith(f"| {first_column} |"))):]
    table = []
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == first_column:
            header = cells
            continue
        if set(cells[0]) <= set("-"):
            continue
        if len(cells) != len(header):
            break
        table.append(dict(zip(header, cells)))
    return table


def _unquote(cell: str) -> str:
    return cell.strip().strip("`")


def _commands_of(cell: str) -> list[str]:
    return [_unquote(c) for c in cell.split(",")]


VOCABULARY = _table("## Vocabulary", "concept")
OLD_SPELLINGS = _table("**Old spellings**", "command")


def test_the_tables_were_found():
    assert len(VOCABULARY) >= 20 and len(OLD_SPELLINGS) >= 15
    assert {"align-faces", "occgen build", "alob-train", "alob-eval", "alob-eval embed", "alob-pipeline"} <= set(COMMANDS)


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_option_has_help_and_the_command_answers_version(path):
    command = COMMANDS[path]
    missing = [p.opts[0] for p in command.params if isinstance(p, click.Option) and not p.hidden
               and not (p.help or "").strip()]
    assert not missing, f"{path}: options without help text: {missing}"
    assert not [p.name for p in command.params if isinstance(p, click.Argument)], \
        f"{path}: positional arguments (the vocabulary names inputs and outputs with --data and --out)"
    name, *subcommands = path.split()
    result = CliRunner().invoke(console_scripts()[name], [*subcommands, "--version"], prog_name=name)
    assert result.exit_code == 0 and result.output.strip() == f"{name} (alob-toolkit) {_installed_version()}", \
        result.output


def _installed_version() -> str:
    """The version pip recorded for alob-toolkit, else setup.cfg's (a checkout that is not installed)."""
    from importlib import metadata

    try:
        return metadata.version("alob-toolkit")
    except metadata.PackageNotFoundError:
        config = configparser.ConfigParser()
        config.read(ROOT / "setup.cfg")
        return config["metadata"]["version"]


def _no_default(value: object) -> bool:
    """No default given (None, an empty tuple, or click's "unset" marker)."""
    return value is None or value == () or type(value).__name__ == "Sentinel"


def _default_matches(option: click.Option, cell: str) -> bool:
    """Whether ``option``'s default is what the table's default cell states: a literal in
    backticks, ``required``, ``off`` (a flag), ``none``, ``per command``, or words (computed at
    run time: no literal default, and the help says what it is)."""
    if cell == "required":
        return option.required
    if cell == "per command":
        return True
    if cell == "off":
        return option.is_flag
    if cell == "none":
        return _no_default(option.default)
    if re.fullmatch(r"`[^`]+`", cell):
        want, have = _unquote(cell), option.default
        have = ",".join(map(str, have)) if isinstance(have, (tuple, list)) else str(have)
        try:
            return float(want) == float(have)
        except ValueError:
            return want == have
    return _no_default(option.default) and "default" in (option.help or "")


@pytest.mark.parametrize("row", VOCABULARY, ids=lambda r: f"{r['concept']} {r['option']}")
def test_each_vocabulary_row_holds_in_the_commands_it_names(row):
    option = _unquote(row["option"])
    for path in _commands_of(row["commands"]):
        assert path in COMMANDS, f"the table names an unknown command {path!r}"
        options = _options(COMMANDS[path])
        assert option in options, f"{path} has no {option}"
        assert _default_matches(options[option], row["default"]), \
            f"{path} {option}: default {options[option].default!r}, the table says {row['default']}"


def test_the_vocabulary_options_appear_only_where_the_table_says():
    """A command given --data, --out, --device … must be in the table's row for it, so that a
    command added later cannot use a shared name for another thing unnoticed."""
    listed: dict[str, set[str]] = {}
    for row in VOCABULARY:
        listed.setdefault(_unquote(row["option"]), set()).update(_commands_of(row["commands"]))
    wrong = [f"{path} {option}" for path, command in COMMANDS.items() for option in _options(command)
             if option in listed and path not in listed[option]]
    assert not wrong, f"options of the vocabulary used outside its table: {wrong}"


def test_old_spellings_are_gone_from_help():
    retired = {"--src", "--lfw-dir", "--work", "--images", "--ar-dir", "--input-size", "--train-folds", "--pick",
               "--margin"}
    wrong = [f"{path} {option}" for path, command in COMMANDS.items() for option in _options(command)
             if option in retired]
    assert not wrong
    assert "--scale" not in _options(COMMANDS["alob-train"]) and "--scale" not in _options(COMMANDS["occgen preview"])


def _argv(cell: str, path: str) -> list[str]:
    """An old or new spelling of the table as arguments (``SRC``, ``1-5`` … kept as written)."""
    words = _unquote(cell).split()
    prefix = path.split()
    return words[len(prefix):] if words[: len(prefix)] == prefix else words


REWRITTEN = [r for r in OLD_SPELLINGS if isinstance(COMMANDS[_unquote(r["command"])], VocabCommand)
             and not _unquote(r["old"]).endswith("alone")]


@pytest.mark.parametrize("row", REWRITTEN, ids=lambda r: f"{r['command']} {r['old']}")
def test_each_old_spelling_becomes_the_new_one_with_one_note(row):
    path = _unquote(row["command"])
    old, new = _argv(row["old"], path), _argv(row["new"], path)
    if len(old) == 1 and old[0].startswith("--"):  # an option renamed: with a value
        old, new = [*old, "VALUE"], [*new, "VALUE"]
    if row["old"].startswith("`--train-folds"):
        old, new = ["--train-folds", "1-5"], ["--train-on", "0..4"]
    args, notes = rewrite_args(COMMANDS[path], old)
    assert args == new
    assert len(notes) == 1 and notes[0].startswith("warning: ") and "deprecated" in notes[0]
    unchanged, none = rewrite_args(COMMANDS[path], new)
    assert unchanged == new and none == []


def test_repeated_far_and_mask_fraction_alone_still_work_with_one_note(tmp_path):
    from alob_eval.cli import main as evaluate
    from alob_eval.embeddings import save_embeddings
    from train_fixtures import write_pairs

    data = write_pairs(tmp_path / "pairs")
    paths = sorted(str(p.relative_to(data)) for p in data.rglob("*.png"))
    vectors = np.random.default_rng(0).normal(size=(len(paths), 8))
    save_embeddings(tmp_path / "e.npz", paths, vectors)
    runs = {}
    for name, far in (("old", ["--far", "1e-2", "--far", "1e-1"]), ("new", ["--far", "1e-2,1e-1"])):
        result = CliRunner().invoke(evaluate, ["--embeddings", str(tmp_path / "e.npz"), "--bench", f"x={data}",
                                               "--out", str(tmp_path / name), *far])
        assert result.exit_code == 0, result.output
        assert result.output.count("deprecated") == (name == "old")
        runs[name] = json.loads((tmp_path / name / "results.json").read_text())["results"]
    assert runs["old"] == runs["new"] and set(runs["new"]["x"]["tar_at_far"]) == {"0.01", "0.1"}

    from alob_train.cli import main as train

    result = CliRunner().invoke(train, ["--data", str(tmp_path / "nowhere"), "--occlude", "--mask-fraction", "0.3",
                                        "--out", str(tmp_path / "run")])
    assert result.output.count("deprecated") == 1 and "--kind mixed --mask-fraction 0.3" in result.output
    result = CliRunner().invoke(train, ["--data", str(tmp_path / "nowhere"), "--occlude", "--kind", "mask",
                                        "--mask-fraction", "0.3"])
    assert result.exit_code == 2 and "--kind mixed" in result.output


def test_a_deprecated_spelling_builds_the_same_dataset_and_warns_once(tmp_path):
    from train_fixtures import write_folders

    src = write_folders(tmp_path / "src", classes=2, per_class=3)
    common = ["build", "--source", "folder", "--format", "folder", "--workers", "0", "--quiet", "--seed", "3"]
    old = subprocess.run([str(BIN / "occgen"), *common, "--src", str(src), "--out", str(tmp_path / "old"),
                          "--scale-set", "1:0.5:5", "--pick", "file"], capture_output=True, text=True)
    new = subprocess.run([str(BIN / "occgen"), *common, "--data", str(src), "--out", str(tmp_path / "new"),
                          "--scale-set", "1..5/0.5", "--pick-occluder", "file"], capture_output=True, text=True)
    assert old.returncode == 0 and new.returncode == 0, old.stderr + new.stderr
    notes = [line for line in old.stderr.splitlines() if "deprecated" in line]
    assert len(notes) == 3 and len(set(notes)) == 3, old.stderr  # one line per old spelling
    assert "deprecated" not in new.stderr
    for name in ("manifest.csv",):
        assert (tmp_path / "old" / name).read_bytes() == (tmp_path / "new" / name).read_bytes()
    images = sorted(p.relative_to(tmp_path / "new") for p in (tmp_path / "new").rglob("*.jpg"))
    assert images and all((tmp_path / "old" / p).read_bytes() == (tmp_path / "new" / p).read_bytes() for p in images)


def test_size_written_with_x_or_times_gives_the_same_crops(tmp_path):
    from alignment.cli import main as align

    src = tmp_path / "src" / "person"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(2):
        Image.fromarray(rng.integers(0, 255, (90, 80, 3), dtype=np.uint8)).save(src / f"{k}.png")
    outputs = {}
    for name, size in (("x", "112x112"), ("times", "112×112")):
        out = tmp_path / name
        result = CliRunner().invoke(align, ["--data", str(tmp_path / "src"), "--out", str(out), "--size", size,
                                            "--workers", "0", "--quiet", "--device", "cpu"])
        assert result.exit_code == 0, result.output
        outputs[name] = {p.name: p.read_bytes() for p in sorted((out / "person").iterdir())}
        assert json.loads((out / "dataset.json").read_text())["settings"]["size"] in ([112, 112], "112x112")
    assert outputs["x"] == outputs["times"] and len(outputs["x"]) == 2
    assert all(Image.open(tmp_path / "x" / "person" / n).size == (112, 112) for n in outputs["x"])

    from alob_train.cli import _size
    from alob_train.preprocess import parse_input_size

    assert _size(None, None, "56×48") == _size(None, None, "56x48") == (56, 48) == parse_input_size("56×48")


def test_one_list_syntax():
    assert parse_list("0..4") == [0, 1, 2, 3, 4]
    assert parse_list("0,2,5..7") == [0, 2, 5, 6, 7]
    assert parse_list("1..5/0.5", float) == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
    assert parse_list("1e-3,1e-4", float) == [1e-3, 1e-4]
    for bad in ("", "5..1", "1..5/0", "a,b", "1..5/-1"):
        with pytest.raises(ValueError, match="FIRST..LAST"):
            parse_list(bad)
    from occgen.synth import modern_scale_set, parse_scale_set

    assert parse_scale_set("1:0.5:5") == parse_scale_set(modern_scale_set("1:0.5:5")) == parse_scale_set("1..5/0.5")


def test_folds_counted_from_0_and_the_old_option_converted():
    from alob_experiment.cli import _old_folds

    assert _old_folds("1-5") == "0..4" and _old_folds("6-10") == "5..9" and _old_folds("1,3,5") == "0,2,4"
    assert parse_list(_old_folds("6-10")) == [5, 6, 7, 8, 9]
