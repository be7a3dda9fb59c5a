"""Write constraints.txt: the exact version of every distribution installed in the Python
environment that runs this script (the project itself, alob-toolkit, left out).

Run it with the interpreter of an environment in which the test suite has just passed, so that
``scripts/setup.sh`` (which installs with ``-c constraints.txt``) gives a user that environment:

    .venv/bin/python scripts/freeze-constraints.py            # writes constraints.txt at the repository root
    .venv/bin/python scripts/freeze-constraints.py --out -    # prints it instead

README.md, "Set up", says when and how to refresh the file.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import re
import sys
from pathlib import Path

PROJECT = "alob-toolkit"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alob_common.atomic import write_text_atomic  # noqa: E402  (the checkout's own package)


def normalise(name: str) -> str:
    """A distribution name in PEP 503 form (lower case, runs of ``-_.`` as one ``-``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    """``{normalised name: version}`` of every installed distribution but the project; where a
    name is found twice on ``sys.path`` the first one, the one Python imports, counts."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and normalise(name) != PROJECT:
            found.setdefault(normalise(name), dist.version)
    return dict(sorted(found.items()))


def constraints_text(versions: dict[str, str]) -> str:
    """The file's text: a header saying where it came from, then one ``name==version`` a line."""
    header = [
        "# The exact versions of the environment in which the test suite last passed; scripts/setup.sh",
        "# installs with them (-c constraints.txt). Generated, do not edit by hand: see README.md, \"Set up\".",
        f"# Made by scripts/freeze-constraints.py with Python {platform.python_version()} on "
        f"{platform.system()} {platform.machine()}.",
    ]
    return "\n".join(header + [f"{name}=={version}" for name, version in versions.items()]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the exact versions of this environment's distributions "
                                                 "(all but alob-toolkit) as a pip constraints file.")
    parser.add_argument("--out", default=str(ROOT / "constraints.txt"),
                        help="file to write, '-' for standard output [default: constraints.txt at the repository root]")
    args = parser.parse_args(argv)
    versions = installed()
    text = constraints_text(versions)
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    try:
        write_text_atomic(out, text)
    except OSError as err:
        print(f"error: cannot write {out}: {err.strerror or err}", file=sys.stderr)
        return 1
    print(f"wrote {len(versions)} pinned distributions to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
