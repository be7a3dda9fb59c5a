"""``alob-eval suite``: the verification sets, their occluded and masked versions, and the models.

A *set* is an insightface verification ``.bin`` or an aligned folder with a ``pairs.txt``
(:class:`SuiteSet`, from :func:`parse_sets`). Each set is measured in *scenarios*
(:class:`Scenario`): ``clean`` as it is, ``occ-F`` occluded the FROM way at factor F (rectangles),
``occ-rR`` at target coverage R, and ``masked``; the occluded and masked versions are built once
by :func:`occgen.build.build` into ``OUT/sets/<set>/<scenario>/`` (the folder form, ``pairs.csv``
with the clean image 1 and the altered image 2 of every pair) and recorded in
``OUT/sets/<set>/<scenario>.json`` with the source and the build settings: a later suite with
the same settings reuses the build, one with other settings rebuilds it (:func:`ensure_built`).

A *model* (:class:`SuiteModel`) is a named ``--checkpoint``, ``--onnx``, ``--reference`` or
``--embeddings``; what it scores on a set (every scenario) is kept in
``OUT/results/<set>/<model>.json`` with the settings that produced it, so an interrupted suite
resumes where it stopped (:func:`load_result`, :func:`result_key`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

from alob_common.atomic import write_json_atomic
from alob_common.errors import UserError
from alob_eval.benchmarks import Benchmark, bin_benchmark, parse_bench_spec

MODEL_KINDS = ("checkpoint", "onnx", "reference", "embeddings")


class SuiteError(UserError):
    """A suite that cannot run as given (no sets, a bad set or model); the message is one line."""


@dataclass(frozen=True)
class SuiteSet:
    """A verification set: a ``.bin`` (``pairs`` None) or an aligned folder and its pairs.txt."""

    name: str
    path: Path
    pairs: Path | None = None

    @property
    def source(self) -> str:
        """The occgen source that builds its versions: ``bin`` or ``lfw``."""
        return "lfw" if self.pairs is not None else "bin"

    def clean(self) -> Benchmark:
        """The set as it is."""
        if self.pairs is None:
            return bin_benchmark(self.name, self.path)
        return parse_bench_spec(f"{self.name}={self.path}@{self.pairs}")


@dataclass(frozen=True)
class Scenario:
    """``clean``, ``occ-3.0`` (FROM's factor, rectangles), ``occ-r0.52`` (target coverage) or ``masked``."""

    name: str
    factor: float | None = None
    ratio: float | None = None

    def build_config(self, suite_set: SuiteSet, seed: int):
        """The occgen :class:`~occgen.build_config.BuildConfig` of this version of ``suite_set``."""
        from occgen.build_config import BuildConfig, default_occlusion

        source = suite_set.source
        pairs = str(suite_set.pairs.absolute()) if suite_set.pairs else None
        if self.name == "masked":
            return BuildConfig(source=source, occlusion=default_occlusion(source), seed=seed, pairs=pairs, kind="mask")
        blend = "rect" if self.factor is not None else "alpha"
        occlusion = default_occlusion(source, factor=self.factor, ratio=self.ratio, blend=blend)
        return BuildConfig(source=source, occlusion=occlusion, seed=seed, pairs=pairs)


def scenarios(factors: tuple[float, ...], ratios: tuple[float, ...], masked: bool) -> list[Scenario]:
    """clean, then one occluded version per ratio (when given) else per factor, then masked."""
    found = [Scenario("clean")]
    found += [Scenario(f"occ-r{r:g}", ratio=r) for r in ratios] or [Scenario(f"occ-{f:.1f}", factor=f) for f in factors]
    return found + ([Scenario("masked")] if masked else [])


def parse_sets(specs: tuple[str, ...]) -> list[SuiteSet]:
    """The sets of ``--set`` values: ``FILE.bin``, ``NAME=FILE.bin``, a folder of ``.bin`` files
    (each named by its stem) or ``NAME=ALIGNED_DIR@pairs.txt``; names must be distinct."""
    found: list[SuiteSet] = []
    for spec in specs:
        name, sep, where = spec.partition("=")
        if not sep:
            name, where = "", spec
        folder, at, pairs = where.partition("@")
        path = Path(folder)
        if at:
            if not name or not path.is_dir() or not Path(pairs).is_file():
                raise SuiteError(f"--set {spec}: a folder set is NAME=ALIGNED_DIR@pairs.txt with both present")
            found.append(SuiteSet(name, path, Path(pairs)))
        elif path.is_file():
            found.append(SuiteSet(name or path.stem, path))
        elif path.is_dir():
            bins = sorted(path.glob("*.bin"))
            if not bins:
                raise SuiteError(f"--set {spec}: no verification .bin files in this folder (a folder of aligned "
                                 "images is NAME=ALIGNED_DIR@pairs.txt)")
            found += [SuiteSet(b.stem if not name else f"{name}-{b.stem}", b) for b in bins]
        else:
            raise SuiteError(f"--set {spec}: no such file or folder")
    names = [s.name for s in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SuiteError(f"two sets are named {', '.join(twice)}: name them with NAME=PATH")
    if any(not n or "/" in n for n in names):
        raise SuiteError("a set name must be non-empty and hold no '/'")
    return found


@dataclass(frozen=True)
class SuiteModel:
    """A named model: ``kind`` one of :data:`MODEL_KINDS`, ``value`` its run, file or reference name."""

    name: str
    kind: str
    value: str

    def args(self, extra: dict) -> dict:
        """The model arguments alob-eval's embedding code takes (``extra``: which, backend, onnx
        options; the backend applies to checkpoints only)."""
        return {**extra, **({} if self.kind == "checkpoint" else {"backend": "auto"}), self.kind: self.value}

    def key_options(self, extra: dict) -> dict:
        """The options of ``extra`` that change this model's vectors: ``which`` for a checkpoint,
        the ``onnx_*`` convention for an ONNX model (the backend changes only the speed)."""
        if self.kind == "checkpoint":
            return {"which": extra.get("which")}
        if self.kind == "onnx":
            return {k: v for k, v in extra.items() if k.startswith("onnx_") and v is not None}
        return {}

    def fingerprint(self) -> list:
        """What identifies the model's weights: the kind, value and the size and time of its files."""
        path = Path(self.value)
        files = sorted((path / "checkpoints").glob("*.pt")) if path.is_dir() else [path] if path.is_file() else []
        return [self.kind, self.value, [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]]


def parse_models(given: dict[str, tuple[str, ...]]) -> list[SuiteModel]:
    """``{kind: (NAME=VALUE or VALUE, ...)}`` -> models named as given, else by the run folder,
    the file's stem or the reference name; names must be distinct."""
    models = []
    for kind in MODEL_KINDS:
        for spec in given.get(kind, ()):
            name, sep, value = spec.partition("=")
            if not sep:
                value = spec
                name = value if kind == "reference" else Path(value.rstrip("/")).stem or Path(value).name
            if kind != "reference" and not Path(value).exists():
                raise SuiteError(f"--{kind} {spec}: {value} does not exist")
            models.append(SuiteModel(name, kind, value))
    if not models:
        raise SuiteError("give at least one model: --checkpoint, --onnx, --reference or --embeddings (NAME=VALUE)")
    names = [m.name for m in models]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SuiteError(f"two models are named {', '.join(twice)}: name them with NAME=VALUE")
    if any("/" in n for n in names):
        raise SuiteError("a model name must hold no '/'")
    return models


def _recorded(config, folder: Path) -> dict:
    """The build settings as the record keeps them: as occgen writes them into ``dataset.json``
    (the ``pairs`` file by its path relative to the build and its digest), without the derived
    ratio-mode target mean (fixed by the build itself)."""
    from occgen.build_inputs import identify_inputs

    settings = identify_inputs(json.loads(json.dumps(config.settings())), folder)
    settings.get("occlusion", {}).pop("target_mean", None)
    return settings


def _comparable(settings: dict) -> str:
    """Settings as JSON without what does not change a build: the derived ratio-mode target mean,
    and where its input files lie (``pairs`` and ``occluders`` count by their digest only, so a
    moved suite folder keeps its builds)."""
    from occgen.build_inputs import INPUT_KEYS

    settings = json.loads(json.dumps(settings))
    settings.get("occlusion", {}).pop("target_mean", None)
    for key in INPUT_KEYS:
        if isinstance(settings.get(key), dict):
            settings[key] = settings[key].get("sha256")
    return json.dumps(settings, sort_keys=True)


def ensure_built(suite_set: SuiteSet, scenario: Scenario, out: Path, seed: int, workers: int,
                 progress: bool) -> tuple[Path, str]:
    """The folder of ``scenario``'s version of ``suite_set`` under ``out/sets``, built unless a
    build with the same source and settings is recorded; returns it and what was done
    (``reused``, ``built`` or ``rebuilt``)."""
    from occgen.build import Job, build

    config = scenario.build_config(suite_set, seed)
    folder = out / "sets" / suite_set.name / scenario.name
    record = folder.parent / f"{scenario.name}.json"
    wanted = {"source": str(suite_set.path.absolute()), "settings": _recorded(config, folder)}
    old = json.loads(record.read_text()) if record.is_file() else None
    same = (old is not None and old.get("source") == wanted["source"]
            and _comparable(old.get("settings") or {}) == _comparable(wanted["settings"]))
    if same and (folder / "pairs.csv").is_file():
        return folder, "reused"
    overwrite = old is not None or not _resumable(folder, config)
    record.unlink(missing_ok=True)  # no record while the folder is being built
    try:
        build(Job(suite_set.path, folder, config, workers=workers, command=["alob-eval", "suite"]), progress, overwrite)
    except UserError as err:
        raise SuiteError(f"{suite_set.name} {scenario.name}: {err}") from None
    write_json_atomic(record, wanted)
    return folder, "rebuilt" if overwrite and old is not None else "built"


def _resumable(folder: Path, config) -> bool:
    """Whether an unrecorded (interrupted) build in ``folder`` has ``config``'s settings, so its
    finished units can be kept; nothing there counts as resumable."""
    meta = folder / "dataset.json"
    if not meta.is_file():
        return True
    try:
        old = json.loads(meta.read_text()).get("settings") or {}
    except ValueError:
        return False
    return _comparable(old) == _comparable(_recorded(config, folder))


def result_key(model: SuiteModel, suite_set: SuiteSet, built: dict[str, dict], options: dict) -> str:
    """A digest of everything a model × set's pair scores depend on: the model's files, the set,
    each scenario's build settings and ``options`` (flip, the options that change the model's vectors)."""
    data = {"model": model.fingerprint(), "set": [str(suite_set.path.absolute()), str(suite_set.pairs or "")],
            "scenarios": {name: json.loads(_comparable(settings)) for name, settings in built.items()},
            "options": options}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:24]


def result_path(out: Path, suite_set: SuiteSet, model: SuiteModel) -> Path:
    return out / "results" / suite_set.name / f"{model.name}.json"


def load_result(path: Path, key: str) -> dict | None:
    """A finished model × set result with this key, else None (missing, unreadable or stale)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("key") == key and "pairs" in data and "scored" in data else None


def rescore(result: dict, scoring: dict) -> dict:
    """A result file's figures computed again from its stored pair scores at other FARs or
    another TAR convention (``scoring``: ``fars``, ``tar_convention``)."""
    import numpy as np

    from alob_common.verification import evaluate_pairs

    scenarios = {}
    for name, pairs in result["pairs"].items():
        figures = evaluate_pairs(np.asarray(pairs["score"]), np.asarray(pairs["same"], bool),
                                 np.asarray(pairs["fold"]), tuple(scoring["fars"]), scoring["tar_convention"])
        old = result["scenarios"][name]
        scenarios[name] = {**figures, "skipped_pairs": old["skipped_pairs"], "missing_images": old["missing_images"]}
    return {**result, "scored": dict(scoring), "scenarios": scenarios}


def scenario_benchmarks(suite_set: SuiteSet, folders: dict[str, Path]) -> list[Benchmark]:
    """The benchmark of every scenario, named ``<set>/<scenario>``: the clean set and the built folders."""
    benches = [replace(suite_set.clean(), name=f"{suite_set.name}/clean")]
    for name, folder in folders.items():
        benches.append(parse_bench_spec(f"{suite_set.name}/{name}={folder}"))
    return benches
