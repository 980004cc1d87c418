"""The notebooks' Colab setup cell, executed offline: a stub ``google.colab`` module, a local bare
git repository standing in for the remote, and a stub ``pip`` that records what it was asked to
install. The cell's code is the one ``helpers.notebooks.repository`` writes into every notebook."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import paths
from helpers.notebooks import repository

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(subprocess.run(["git", "--version"], capture_output=True).returncode != 0,
                                reason="git is not installed")


def _git(*args, cwd):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


@pytest.fixture
def remote(tmp_path):
    """A bare repository with a tiny ``helpers`` package, a committed cache file and a tag."""
    work = tmp_path / "upstream"
    (work / "helpers" / "notebooks").mkdir(parents=True)
    (work / "results" / "cache" / "runs").mkdir(parents=True)
    (work / "pyproject.toml").write_text('[project]\nname = "mo-pruning"\n')
    (work / "helpers" / "__init__.py").write_text("")
    (work / "helpers" / "notebooks" / "__init__.py").write_text(textwrap.dedent("""\
        import os

        def setup():
            print("SETUP", os.getcwd(), os.path.isfile("results/cache/runs/run.json"))
        """))
    (work / "results" / "cache" / "runs" / "run.json").write_text("{}")
    _git("init", "-q", "-b", "main", cwd=work)
    _git("add", ".", cwd=work)
    _git("commit", "-q", "-m", "results", cwd=work)
    _git("tag", "v9.9.9", cwd=work)
    bare = tmp_path / "remote.git"
    _git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    return bare


def _stub_pip(folder):
    """A ``pip`` package that ``python -m pip`` finds first: it records its arguments and cwd."""
    (folder / "pip").mkdir(parents=True)
    (folder / "pip" / "__init__.py").write_text("")
    (folder / "pip" / "__main__.py").write_text(textwrap.dedent("""\
        import json, os, sys
        with open(os.environ["PIP_LOG"], "a") as f:
            f.write(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd()}) + "\\n")
        """))


def _run_cell(code, cwd, tmp_path, colab=True, preimport=None):
    """Execute the setup cell's ``code`` in a fresh interpreter in ``cwd`` (as a kernel would)."""
    stubs = tmp_path / "stubs"
    if not stubs.exists():
        _stub_pip(stubs)
    prelude = "import sys, types\n"
    if colab:
        prelude += 'sys.modules["google"] = types.ModuleType("google")\n'
        prelude += 'sys.modules["google.colab"] = types.ModuleType("google.colab")\n'
    if preimport:
        prelude += f"import {preimport}\n"
    log = tmp_path / "pip.jsonl"
    env = dict(os.environ, PYTHONPATH=str(stubs), PIP_LOG=str(log))
    env.pop("MOPRUNE_ROOT", None)
    done = subprocess.run([sys.executable, "-c", prelude + code + "\nimport os; print('CWD', os.getcwd())"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done, calls


def _cell(url, ref="main"):
    return "\n".join(repository.setup_lines(str(url), ref))


def test_the_setup_cell_is_what_every_notebook_runs():
    code = _cell(repository.repository_url(), repository.repository_ref())
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        first = next("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        assert code in first, path.name
    assert f'"keras=={repository.lock_pins()["keras"]}"' in code  # the lock's Keras
    assert len(code.splitlines()) <= 20


@pytest.mark.parametrize("ref", ["main", "v9.9.9"])
def test_on_colab_it_clones_installs_and_changes_into_the_repository(remote, tmp_path, ref):
    content = tmp_path / "content"
    content.mkdir()
    done, calls = _run_cell(_cell(remote, ref), content, tmp_path)
    assert done.returncode == 0, done.stderr
    clone = content / repository.CLONE
    assert (clone / "results" / "cache" / "runs" / "run.json").is_file()  # the committed cache came along
    assert f"SETUP {clone} True" in done.stdout and f"CWD {clone}" in done.stdout
    [pip] = calls
    assert pip["cwd"] == str(clone)
    assert pip["argv"][:3] == ["install", "-q", "-e"] and pip["argv"][3] == "."
    assert f"keras=={repository.lock_pins()['keras']}" in pip["argv"]
    # a second run of the cell (in the clone now) neither clones nor installs again
    done, calls = _run_cell(_cell(remote, ref), clone, tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(calls) == 1 and f"SETUP {clone} True" in done.stdout


def test_an_existing_clone_is_reused(remote, tmp_path):
    content = tmp_path / "content"
    content.mkdir()
    _git("clone", "-q", str(remote), repository.CLONE, cwd=content)
    done, calls = _run_cell(_cell(tmp_path / "no-such-remote.git"), content, tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(calls) == 1 and f"CWD {content / repository.CLONE}" in done.stdout


def test_off_colab_nothing_is_cloned_or_installed(remote, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    _git("clone", "-q", str(remote), str(elsewhere), cwd=tmp_path)  # a checkout, as make / Binder have
    done, calls = _run_cell(_cell(remote), elsewhere, tmp_path, colab=False)
    assert done.returncode == 0, done.stderr
    assert calls == [] and not (elsewhere / repository.CLONE).exists()
    assert f"SETUP {elsewhere} True" in done.stdout and f"CWD {elsewhere}" in done.stdout


@pytest.mark.parametrize("colab", [False, True])
def test_a_users_helpers_module_is_named_not_imported(remote, tmp_path, colab):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "helpers.py").write_text("def mine(): pass\n")
    # imported before the cell (as a user's earlier cell would): the clone cannot replace it
    done, _ = _run_cell(_cell(remote), folder, tmp_path, colab=colab, preimport="helpers")
    assert done.returncode != 0
    assert "ImportError: 'helpers' is" in done.stderr and str(folder / "helpers.py") in done.stderr
    assert "not the mo-pruning package: rename that file" in done.stderr


def test_on_colab_the_clone_wins_over_a_users_helpers_file_not_yet_imported(remote, tmp_path):
    content = tmp_path / "content"
    content.mkdir()
    (content / "helpers.py").write_text("raise SystemExit('the user file was imported')\n")
    done, _ = _run_cell(_cell(remote), content, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"SETUP {content / repository.CLONE} True" in done.stdout


SIMULATION_ENV = "MOPRUNE_COLAB_SIMULATION"


def _texts(cell, sanitize):
    """The compared text of a cell's outputs (what nbval compares: streams and text data)."""
    texts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            texts.append((output["name"], sanitize("".join(output["text"]))))
        for mime, value in output.get("data", {}).items():
            if mime.startswith("text/"):
                texts.append((mime, sanitize("".join(value) if isinstance(value, list) else value)))
    return texts


@pytest.mark.notebooks
@pytest.mark.needs_data("mnist", "fashion_mnist", "cifar10")
@pytest.mark.skipif(not os.environ.get(SIMULATION_ENV), reason=f"executes all nine notebooks (about 10 min): "
                    f"set {SIMULATION_ENV}=1")
def test_colab_simulation_shows_every_notebooks_committed_results(tmp_path, monkeypatch):
    """Colab, offline: this working tree committed to a local bare repository that git serves for
    the pyproject URL (``url.<bare>.insteadOf``), a stub ``google.colab`` imported at kernel start-up,
    a stub pip; each notebook executed from an empty working folder as Colab does. The first setup
    cell clones, every one installs and changes into the clone; each notebook then shows its
    committed outputs (compared as nbval compares them) and leaves the clone's tracked files unchanged."""
    import re

    import papermill
    from nbval.plugin import get_sanitize_patterns

    from helpers.notebooks.execution import clean_notebook

    upstream = tmp_path / "upstream"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (upstream / name).parent.mkdir(parents=True, exist_ok=True)
            (upstream / name).write_bytes((ROOT / name).read_bytes())
    _git("init", "-q", "-b", repository.repository_ref(), cwd=upstream)
    _git("add", ".", cwd=upstream)
    _git("commit", "-q", "-m", "snapshot", cwd=upstream)
    bare = tmp_path / "remote.git"
    _git("clone", "-q", "--bare", str(upstream), str(bare), cwd=tmp_path)

    stubs = tmp_path / "stubs"
    _stub_pip(stubs)
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    # Only google.colab: a stub ``google`` would hide the real namespace package (TensorFlow imports
    # google.protobuf from it).
    (startup / "00-colab.py").write_text("import sys, types\n"
                                         "sys.modules['google.colab'] = types.ModuleType('google.colab')\n")
    content = tmp_path / "content"
    content.mkdir()
    for name, value in {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.{bare}.insteadOf",
                        "GIT_CONFIG_VALUE_0": repository.repository_url(), "IPYTHONDIR": str(tmp_path / "ipython"),
                        "PYTHONPATH": str(stubs), "PIP_LOG": str(tmp_path / "pip.jsonl"),
                        "PRUNING_DATA_DIR": str(paths.data_dir())}.items():
        monkeypatch.setenv(name, value)
    for name in ("MOPRUNE_ROOT", "MOPRUNE_OUTPUT_DIR"):
        monkeypatch.delenv(name, raising=False)

    patterns = get_sanitize_patterns((ROOT / "notebooks" / "nbval_sanitize.cfg").read_text())

    def sanitize(text):
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    clone = content / repository.CLONE
    differences = []
    notebooks = sorted((upstream / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for path in notebooks:
        out = tmp_path / "executed" / path.name
        out.parent.mkdir(exist_ok=True)
        papermill.execute_notebook(str(path), str(out), cwd=str(content), progress_bar=False, kernel_name="python3")
        executed = clean_notebook(json.loads(out.read_text()), relative_to=clone)
        stored = json.loads(path.read_text())
        for i, (new, old) in enumerate(zip(executed["cells"], stored["cells"])):
            if old["cell_type"] == "code" and "NBVAL_IGNORE_OUTPUT" not in "".join(old["source"]):
                if _texts(new, sanitize) != _texts(old, sanitize):
                    differences.append(f"{path.name} cell {i}")
    assert (clone / "results" / "cache" / "runs").is_dir()
    pip = [json.loads(line) for line in (tmp_path / "pip.jsonl").read_text().splitlines()]
    assert len(pip) == len(notebooks) and {call["cwd"] for call in pip} == {str(clone)}
    assert not differences, differences
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=clone, check=True,
                             capture_output=True, text=True).stdout
    assert not changed, f"the notebooks changed tracked files of the clone:\n{changed}"
