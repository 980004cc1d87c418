"""The repository's one URL and what is generated from it.

The URL is stated once, in ``pyproject.toml`` (``[project.urls] Repository``). The README's
badges, each notebook's Colab badge and Colab setup cell, and ``binder/requirements.txt`` (a copy
of the lock file's pins) are kept in step with it and with the lock by::

    python -m helpers.repository sync     # rewrite them (a fork: change the URL, then run this)
    python -m helpers.repository check    # list what is out of step (tests/test_reproducibility.py)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from .paths import source_root

PACKAGE = "mo-pruning"
BRANCH = "main"
SETUP_MARKER = "# Setup. On Colab"
_GITHUB = re.compile(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?$")


def _root(root=None) -> Path:
    return Path(root) if root else source_root()


def repository_url(root=None) -> str:
    text = (_root(root) / "pyproject.toml").read_text()
    try:
        import tomllib

        return tomllib.loads(text)["project"]["urls"]["Repository"]
    except ImportError:  # Python 3.10
        return re.search(r'^Repository\s*=\s*"([^"]+)"', text, re.M).group(1)


def github_slug(url: str) -> str:
    match = _GITHUB.match(url)
    if not match:
        raise ValueError(f"the Repository URL must be https://github.com/OWNER/NAME, got {url!r}")
    return match.group(1)


def colab_url(notebook: str, url: str) -> str:
    return f"https://colab.research.google.com/github/{github_slug(url)}/blob/{BRANCH}/notebooks/{notebook}"


def binder_url(url: str) -> str:
    return f"https://mybinder.org/v2/gh/{github_slug(url)}/{BRANCH}?urlpath=lab/tree/notebooks"


def colab_badge(notebook: str, url: str) -> str:
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(notebook, url)})"


def binder_badge(url: str) -> str:
    return f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(url)})"


def setup_lines(url: str) -> list[str]:
    """The first lines of every notebook's first code cell: install on Colab, then ``setup()``."""
    return [
        f"{SETUP_MARKER}, install the package first (elsewhere it is installed: make, CI, Binder, pip -e).",
        "import importlib.util, subprocess, sys  # noqa: E401",
        "",
        'if "google.colab" in sys.modules and importlib.util.find_spec("helpers") is None:',
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{PACKAGE} @ git+{url}"], check=True)',
        "from helpers.notebook import setup",
        "",
        "setup()  # quiet TensorFlow start-up, figure style, pandas display width",
    ]


# The setup block before helpers.notebook.setup existed; ``sync`` replaces it (and the lines that
# setup() now does) with the current one.
_LEGACY_SETUP_END = "import helpers"
_LEGACY_SETUP_LINES = ("from helpers.runtime import quiet_import",
                       "quiet_import()  # TensorFlow's start-up notices would clutter the outputs",
                       "plotting.set_style()", 'pd.set_option("display.width", 140)')


def _setup_cell(source: str, url: str) -> str:
    """``source`` (a first code cell) with its setup block regenerated from ``setup_lines``."""
    lines = source.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(SETUP_MARKER))
    new = setup_lines(url)
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
    return ("# Binder's environment: a copy of requirements/lock.txt (`python -m helpers.repository sync`,\n"
            "# run by `make lock`); binder/postBuild then installs the package without dependencies.\n" + lock)


def sync(root=None) -> list[Path]:
    """Rewrite badges, setup cells and binder/requirements.txt from pyproject and the lock."""
    root = _root(root)
    url = repository_url(root)
    changed = []
    readme = root / "README.md"
    text = readme.read_text()
    new = _BINDER_BADGE.sub(lambda m: binder_badge(url), text)
    new = _COLAB_BADGE.sub(lambda m: colab_badge("01_biobjective_problem.ipynb", url), new)
    if new != text:
        readme.write_text(new)
        changed.append(readme)
    for path in _notebooks(root):
        nb = json.loads(path.read_text())
        before = json.dumps(nb)
        for cell in nb["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "markdown":
                source = _COLAB_BADGE.sub(lambda m: colab_badge(path.name, url), source)
            elif SETUP_MARKER in source:
                source = _setup_cell(source, url)
            cell["source"] = source.splitlines(keepends=True)
        if json.dumps(nb) != before:
            from .notebook_outputs import write_notebook

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
    url = repository_url(root)
    problems = []
    readme = (root / "README.md").read_text()
    if binder_badge(url) not in readme:
        problems.append("README.md: Binder badge does not point to the repository URL")
    if colab_badge("01_biobjective_problem.ipynb", url) not in readme:
        problems.append("README.md: Colab badge does not point to the repository URL")
    for path in _notebooks(root):
        cells = json.loads(path.read_text())["cells"]
        first_md = next("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        if colab_badge(path.name, url) not in first_md:
            problems.append(f"{path.name}: Colab badge missing or not on the repository URL")
        first_code = next("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        if "\n".join(setup_lines(url)) not in first_code:
            problems.append(f"{path.name}: the first code cell is not the Colab setup for {url}")
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
