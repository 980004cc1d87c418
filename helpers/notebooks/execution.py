"""Stored notebooks that a rerun leaves unchanged.

``clean`` removes what varies between two executions with the same numbers: progress bars
(tqdm widgets and text bars, ``TqdmWarning``), execution timestamps and durations that
papermill and Jupyter write into the metadata, widget state, and absolute paths of this machine
(the checkout, the virtual environment, the home folder) in text outputs.

``execute`` runs a notebook with papermill into a temporary file and moves it over the
destination only on success, cleaned; a failed run never overwrites a notebook. Without
data it stops with one short message. The kernel talks to papermill over IPC sockets in a private
temporary folder, not TCP: nothing is sent over the network, so ipykernel no longer warns "Kernel is
running over TCP without encryption" once per notebook; and papermill's asyncio loop is closed
only after the kernel's sockets are (no "Event loop is closed" tracebacks at exit).

    python -m helpers.notebooks clean NOTEBOOK...
    python -m helpers.notebooks execute NOTEBOOK [OUTPUT] [-p NAME VALUE]... [-y YAML]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import site
import sys
import sysconfig
import tempfile
from pathlib import Path

from .. import paths
from ..files import atomic_write

# Stream text that is a progress bar or its warning, never a result.
_PROGRESS = re.compile(r"\d+%\|.*\||it/s\]|s/it\]|TqdmWarning|IProgress not found|ipywidgets")
_WIDGET = "application/vnd.jupyter.widget-view+json"
# Per-cell and notebook metadata that records when, how long and where a run happened.
_CELL_METADATA = ("execution", "papermill", "collapsed", "scrolled", "ExecuteTime")
_PAPERMILL_KEEP = ("default_parameters", "parameters", "version")


def _machine_paths() -> list[tuple[str, str]]:
    """(absolute path, replacement) pairs, longest first."""
    pairs = []
    for base in {*site.getsitepackages(), site.getusersitepackages(), sysconfig.get_paths()["purelib"]}:
        pairs.append((str(Path(base).resolve()) + os.sep, ""))
        pairs.append((str(base).rstrip(os.sep) + os.sep, ""))
    pairs.append((str(Path(sys.prefix).resolve()) + os.sep, "<venv>/"))
    pairs.append((sys.prefix.rstrip(os.sep) + os.sep, "<venv>/"))
    for root in {paths.source_root(), paths.project_root(), paths.output_root()}:
        pairs.append((str(root) + os.sep, ""))
    data = paths.data_dir()
    if data is not None:
        pairs.append((str(Path(data).resolve()) + os.sep, "<data>/"))
    pairs.append((str(Path.home()) + os.sep, "~/"))
    pairs.append((tempfile.gettempdir().rstrip(os.sep) + os.sep, "<tmp>/"))
    return sorted({p for p in pairs if len(p[0]) > 2}, key=lambda p: -len(p[0]))


def _scrub(text: str, pairs) -> str:
    for path, replacement in pairs:
        text = text.replace(path, replacement)
    return text


def _is_progress(output) -> bool:
    if output.get("output_type") in ("display_data", "execute_result") and _WIDGET in output.get("data", {}):
        return True
    if output.get("output_type") == "stream":
        text = "".join(output.get("text", ""))
        return "\r" in text or bool(_PROGRESS.search(text))
    return False


def _coalesce(outputs):
    merged = []
    for out in outputs:
        if (out.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                and merged[-1].get("name") == out.get("name")):
            merged[-1]["text"] = "".join(merged[-1]["text"]) + "".join(out["text"])
        else:
            merged.append(out)
    return merged


def clean_notebook(nb: dict, relative_to: Path | None = None) -> dict:
    """Clean a notebook (the JSON dict) in place and return it."""
    pairs = _machine_paths()
    metadata = nb.setdefault("metadata", {})
    metadata.pop("widgets", None)
    if "papermill" in metadata:
        kept = {k: v for k, v in metadata["papermill"].items() if k in _PAPERMILL_KEEP}
        for key in ("input_path", "output_path"):
            value = metadata["papermill"].get(key)
            if value:
                kept[key] = _relative(value, relative_to)
        metadata["papermill"] = kept
    for cell in nb.get("cells", []):
        for key in _CELL_METADATA:
            cell.get("metadata", {}).pop(key, None)
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell["id"] = "injected-parameters"  # papermill draws a new random id on every execution
        if cell.get("cell_type") != "code":
            continue
        outputs = [o for o in cell.get("outputs", []) if not _is_progress(o)]
        for out in outputs:
            if out.get("output_type") == "stream":
                out["text"] = _scrub("".join(out["text"]), pairs)
            elif out.get("output_type") == "error":
                out["traceback"] = [_scrub(line, pairs) for line in out.get("traceback", [])]
                out["evalue"] = _scrub(out.get("evalue", ""), pairs)
            for mime, value in out.get("data", {}).items():
                if mime.startswith("text/"):
                    text = "".join(value) if isinstance(value, list) else value
                    out["data"][mime] = _scrub(text, pairs)
        outputs = _coalesce(outputs)
        # What a progress bar leaves of stderr (a bare newline) arrives before or after the cell's
        # printed lines, as the threads happen to flush: it goes last, so a rerun stores the same.
        blank = [o for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stderr"
                 and not "".join(o.get("text", "")).strip()]
        cell["outputs"] = [o for o in outputs if not any(o is b for b in blank)] + blank
    return nb


def _relative(value: str, base: Path | None) -> str:
    path = Path(value)
    for root in filter(None, (base, paths.source_root(), paths.project_root())):
        try:
            return str(path.resolve().relative_to(Path(root).resolve()))
        except ValueError:
            continue
    return path.name


def write_notebook(nb: dict, path: Path):
    """Write as nbformat does (one-space indent, sorted keys, trailing newline)."""
    import nbformat

    text = nbformat.writes(nbformat.from_dict(nb))
    Path(path).write_text(text if text.endswith("\n") else text + "\n")


def clean_file(path, output=None):
    path = Path(path)
    nb = json.loads(path.read_text())
    write_notebook(clean_notebook(nb, relative_to=paths.source_root()), Path(output or path))


def _ipc_kernel_manager():
    """An ``AsyncKernelManager`` whose kernel listens on IPC sockets in a fresh private folder
    (``ip`` is the sockets' path prefix; ipc files are created 0600 by ZeroMQ there)."""
    from jupyter_client import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self):
            return "ipc"

        @default("ip")
        def _ip_default(self):
            self._ipc_folder = tempfile.mkdtemp(prefix="mo-pruning-kernel-")
            return os.path.join(self._ipc_folder, "kernel")

        async def _async_cleanup_resources(self, restart=False):
            await super()._async_cleanup_resources(restart=restart)
            folder = getattr(self, "_ipc_folder", None)
            if folder and not restart:
                import shutil

                shutil.rmtree(folder, ignore_errors=True)

        cleanup_resources = _async_cleanup_resources

    return IPCKernelManager


def execute(notebook, output=None, parameters=None, cwd=None, kernel_name=None, log_output=False):
    """Execute ``notebook`` with papermill into ``output`` (default: over itself), cleaned.

    The run goes to a temporary file first; ``output`` is replaced only if every cell succeeded.
    Raises ``SystemExit`` with one line when the data cannot be loaded.
    """
    import papermill

    notebook = Path(notebook).resolve()
    output = Path(output).resolve() if output else notebook

    def run(tmp):
        try:
            papermill.execute_notebook(str(notebook), tmp, parameters=parameters or {},
                                       cwd=str(cwd or notebook.parent), kernel_name=kernel_name,
                                       progress_bar=False, log_output=log_output,
                                       kernel_manager_class=_ipc_kernel_manager())
        except papermill.PapermillExecutionError as exc:
            if exc.ename == "DataUnavailableError":
                raise SystemExit(f"{notebook.name}: no data: {exc.evalue.split(': ', 1)[-1]}") from None
            raise
        nb = json.loads(Path(tmp).read_text())
        nb.setdefault("metadata", {}).setdefault("papermill", {})["input_path"] = str(notebook)
        nb["metadata"]["papermill"]["output_path"] = str(output)
        write_notebook(clean_notebook(nb, relative_to=paths.source_root()), Path(tmp))
    atomic_write(output, run, suffix=".ipynb")
    return output


def execute_variants():
    """Execute each notebook's canonical variants (the ``variants`` of its manifest entry) into their
    committed records, in manifest order."""
    from .manifest import NOTEBOOKS  # the manifest loads the library; clean and execute need none of it

    notebooks = paths.notebooks_dir()
    for stem, entry in NOTEBOOKS.items():
        for variant in entry.variants:
            print(f"== notebooks/{stem}.ipynb, {variant.title}", flush=True)
            execute(notebooks / f"{stem}.ipynb", notebooks.parent / variant.output, variant.parameters)


def _parse_parameters(pairs, yaml_text):
    import yaml

    parameters = dict(yaml.safe_load(yaml_text) or {}) if yaml_text else {}
    for name, value in pairs or []:
        parameters[name] = yaml.safe_load(value)
    return parameters


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m helpers.notebooks", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    clean = sub.add_parser("clean", help="strip volatile output from stored notebooks, in place")
    clean.add_argument("notebooks", nargs="+")
    run = sub.add_parser("execute", help="execute with papermill; replace the output only on success")
    run.add_argument("notebook")
    run.add_argument("output", nargs="?")
    run.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"))
    run.add_argument("-y", "--yaml", help="parameters as a YAML mapping")
    run.add_argument("--cwd", help="working directory of the kernel (default: the notebook's folder)")
    run.add_argument("--log-output", action="store_true", help="echo the cells' output while running")
    sub.add_parser("variants", help="execute every canonical variant (helpers.notebooks.manifest) into its record")
    args = parser.parse_args(argv)
    if args.command == "variants":
        execute_variants()
        return 0
    if args.command == "clean":
        for path in args.notebooks:
            clean_file(path)
        return 0
    execute(args.notebook, args.output, _parse_parameters(args.parameter, args.yaml), cwd=args.cwd,
            log_output=args.log_output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
