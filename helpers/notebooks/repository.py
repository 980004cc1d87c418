"""The repository's one URL and what is generated from it.

The URL is stated once, in ``pyproject.toml`` (``[project.urls] Repository``), with the ref the
badges open and Colab clones (``[tool.mo-pruning] colab-ref``, default ``main``). The README's
badges, each notebook's Colab badge and Colab setup cell (``setup_lines``: on Colab it clones the
repository at that ref, installs it editable with the lock's ``COLAB_PINS`` and changes into it, so
the committed cache is there), and ``binder/requirements.txt`` (a copy of the lock file's pins) are
kept in step with them and with the lock by::

    python -m helpers.notebooks sync     # rewrite them (a fork: change the URL, then run this)
    python -m helpers.notebooks check    # list what is out of step (tests/test_reproducibility.py)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from ..paths import source_root
from .execution import write_notebook

PACKAGE = "mo-pruning"
BRANCH = "main"
SETUP_MARKER = "# Setup. On Colab"
_GITHUB = re.compile(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?$")


def _root(root=None) -> Path:
    return Path(root) if root else source_root()


def _pyproject(root=None) -> dict:
    text = (_root(root) / "pyproject.toml").read_text()
    try:
        import tomllib
    except ImportError:  # Python 3.10: the two values read here, by pattern
        url = re.search(r'^Repository\s*=\s*"([^"]+)"', text, re.M).group(1)
        ref = re.search(r'^colab-ref\s*=\s*"([^"]+)"', text, re.M)
        return {"project": {"urls": {"Repository": url}},
                "tool": {"mo-pruning": {"colab-ref": ref.group(1)} if ref else {}}}
    return tomllib.loads(text)


def repository_url(root=None) -> str:
    return _pyproject(root)["project"]["urls"]["Repository"]


def repository_ref(root=None) -> str:
    """The ref the badges open and Colab clones: ``[tool.mo-pruning] colab-ref`` in pyproject
    (a release tag pins both to one commit), else ``main``."""
    ref = _pyproject(root).get("tool", {}).get("mo-pruning", {}).get("colab-ref", BRANCH)
    if not re.fullmatch(r"[\w.][\w./-]*", ref):
        raise ValueError(f"colab-ref must be a branch or tag name, got {ref!r}")
    return ref


def github_slug(url: str) -> str:
    match = _GITHUB.match(url)
    if not match:
        raise ValueError(f"the Repository URL must be https://github.com/OWNER/NAME, got {url!r}")
    return match.group(1)


def colab_url(notebook: str, url: str, ref: str = BRANCH) -> str:
    return f"https://colab.research.google.com/github/{github_slug(url)}/blob/{ref}/notebooks/{notebook}"


def binder_url(url: str, ref: str = BRANCH) -> str:
    return f"https://mybinder.org/v2/gh/{github_slug(url)}/{ref}?urlpath=lab/tree/notebooks"


def colab_badge(notebook: str, url: str, ref: str = BRANCH) -> str:
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(notebook, url, ref)})")


def binder_badge(url: str, ref: str = BRANCH) -> str:
    return f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(url, ref)})"


# Where Colab's preinstalled versions differ from the lock in a way that matters, the setup cell
# installs the lock's: Keras (the numbers a run produces, and the API; Colab's may be another 3.x).
# TensorFlow stays Colab's own GPU build (a cached run made under other versions is named by
# EnvironmentMismatchWarning); the other dependencies only draw and print.
COLAB_PINS = ("keras",)
CLONE = PACKAGE  # the folder the setup cell clones into, beside the notebook's working folder


def setup_lines(url: str, ref: str = BRANCH, pins: dict | None = None) -> list[str]:
    """The first lines of every notebook's first code cell: on Colab, clone the repository (its
    committed cache, tables and CSVs) at ``ref``, install it editable with the lock's ``COLAB_PINS``
    and change into it; everywhere, refuse a ``helpers`` that is not this package; then ``setup()``.

    The logic is in the cell, not the package, because it runs before the package exists; it is
    kept to a dozen lines (tests/test_colab.py executes them against a local bare repository).
    """
    pins = lock_pins() if pins is None else pins
    requirements = ", ".join(f'"{name}=={pins[name]}"' for name in COLAB_PINS)
    major = pins["keras"].split(".")[0]
    return [
        f"{SETUP_MARKER}, clone the repository (its cache: results in seconds) and install it; elsewhere make, CI,",
        "# Binder or pip -e installed it. Generated from pyproject.toml by `python -m helpers.notebooks sync`.",
        "import importlib.metadata, importlib.util, os, subprocess, sys  # noqa: E401",
        "",
        'if "google.colab" in sys.modules and not os.path.isfile("helpers/notebooks/__init__.py"):',
        f'    if not os.path.isdir("{CLONE}/.git"):',
        f'        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "{ref}", "{url}", "{CLONE}"], check=True)',
        f'    os.chdir("{CLONE}")  # notebooks/, results/cache/ and the benchmark CSVs are here',
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", ".", {requirements}], check=True)',
        "    importlib.invalidate_caches()",
        f'    assert importlib.metadata.version("keras").split(".")[0] == "{major}", "this project needs Keras {major}"',
        'spec = importlib.util.find_spec("helpers")',
        "if spec is None or spec.submodule_search_locations is None:  # a helpers.py of the user's shadows the package",
        f'    raise ImportError(f"\'helpers\' is {{spec and spec.origin}}, not the {PACKAGE} package: rename that file "',
        '                      "(and restart the kernel if it was imported)")',
        "from helpers.notebooks import setup",
        "",
        "setup()  # quiet TensorFlow start-up, figure style, pandas display width",
    ]


# The setup block before setup() existed; ``sync`` replaces it (and the lines that
# setup() now does) with the current one.
_LEGACY_SETUP_END = "import helpers"
_LEGACY_SETUP_LINES = ("from helpers.runtime import quiet_import",
                       "quiet_import()  # TensorFlow's start-up notices would clutter the outputs",
                       "plotting.set_style()", 'pd.set_option("display.width", 140)')


def _setup_cell(source: str, url: str, ref: str = BRANCH, pins: dict | None = None) -> str:
    """``source`` (a first code cell) with its setup block regenerated from ``setup_lines``."""
    lines = source.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(SETUP_MARKER))
    new = setup_lines(url, ref, pins)
    ends = [i for i, line in enumerate(lines) if i > start and line in (new[-1], _LEGACY_SETUP_END)]
    end = ends[0] if ends else start
    legacy = lines[end] == _LEGACY_SETUP_END
    rest = [line for line in lines[end + 1:] if not (legacy and line in _LEGACY_SETUP_LINES)]
    if rest and rest[0]:
        rest.insert(0, "")
    text = "\n".join(lines[:start] + new + rest)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip("\n")


_COLAB_BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
_BINDER_BADGE = re.compile(r"\[!\[Binder\]\([^)]*\)\]\([^)]*\)")


def _notebooks(root):
    return sorted((_root(root) / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _pins(path: Path) -> dict:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            pins[re.sub(r"[-_.]+", "-", name.split("[")[0].strip().lower())] = version.split(";")[0].strip()
    return pins


def lock_pins(root=None) -> dict:
    return _pins(_root(root) / "requirements" / "lock.txt")


def binder_pins(root=None) -> dict:
    return _pins(_root(root) / "binder" / "requirements.txt")


def _binder_requirements(root) -> str:
    lock = (_root(root) / "requirements" / "lock.txt").read_text()
    return ("# Binder's environment: a copy of requirements/lock.txt (`python -m helpers.notebooks sync`,\n"
            "# run by `make lock`); binder/postBuild then installs the package without dependencies.\n" + lock)


def sync(root=None) -> list[Path]:
    """Rewrite badges, setup cells and binder/requirements.txt from pyproject and the lock."""
    root = _root(root)
    url, ref, pins = repository_url(root), repository_ref(root), lock_pins(root)
    changed = []
    readme = root / "README.md"
    text = readme.read_text()
    new = _BINDER_BADGE.sub(lambda m: binder_badge(url, ref), text)
    new = _COLAB_BADGE.sub(lambda m: colab_badge("01_biobjective_problem.ipynb", url, ref), new)
    if new != text:
        readme.write_text(new)
        changed.append(readme)
    for path in _notebooks(root):
        nb = json.loads(path.read_text())
        before = json.dumps(nb)
        for cell in nb["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "markdown":
                source = _COLAB_BADGE.sub(lambda m: colab_badge(path.name, url, ref), source)
            elif SETUP_MARKER in source:
                source = _setup_cell(source, url, ref, pins)
            cell["source"] = source.splitlines(keepends=True)
        if json.dumps(nb) != before:
            write_notebook(nb, path)
            changed.append(path)
    binder = root / "binder" / "requirements.txt"
    content = _binder_requirements(root)
    if not binder.exists() or binder.read_text() != content:
        binder.parent.mkdir(exist_ok=True)
        binder.write_text(content)
        changed.append(binder)
    return changed


def check(root=None) -> list[str]:
    """What is out of step with pyproject's URL and the lock (empty when all is consistent)."""
    root = _root(root)
    url, ref, pins = repository_url(root), repository_ref(root), lock_pins(root)
    problems = []
    readme = (root / "README.md").read_text()
    if binder_badge(url, ref) not in readme:
        problems.append("README.md: Binder badge does not point to the repository URL")
    if colab_badge("01_biobjective_problem.ipynb", url, ref) not in readme:
        problems.append("README.md: Colab badge does not point to the repository URL")
    for path in _notebooks(root):
        cells = json.loads(path.read_text())["cells"]
        first_md = next("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        if colab_badge(path.name, url, ref) not in first_md:
            problems.append(f"{path.name}: Colab badge missing or not on the repository URL")
        first_code = next("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        if "\n".join(setup_lines(url, ref, pins)) not in first_code:
            problems.append(f"{path.name}: the first code cell is not the Colab setup for {url} at {ref}")
    for other in sorted(set(re.findall(r"(?:mybinder\.org/v2/gh|colab\.research\.google\.com/github)/([\w.-]+/[\w.-]+)",
                                       readme)) - {github_slug(url)}):
        problems.append(f"README.md: a badge or link points to another repository: {other}")
    if binder_pins(root) != lock_pins(root):
        problems.append("binder/requirements.txt differs from requirements/lock.txt")
    return problems


def main(argv=None):
    command = (argv or sys.argv[1:] or ["check"])[0]
    if command == "sync":
        for path in sync():
            print("updated", path.relative_to(source_root()))
        return 0
    problems = check()
    print("\n".join(problems) if problems else "consistent with " + repository_url())
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
