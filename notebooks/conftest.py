"""nbval set-up for ``pytest --nbval``.

nbval re-executes a notebook on its default parameters and compares the outputs stored in it
(sanitised by ``notebooks/nbval_sanitize.cfg``: timings, paths and progress bars; the Makefile and
pyproject pass it). A notebook stored without outputs has nothing to compare yet: its default sweep
is still being computed (executing it would train for hours), so nbval skips it until `make
figures` has run it from a complete cache. tests/test_notebooks.py executes every notebook on tiny
parameters regardless.

Without data, nbval skips, it does not fail: when a cell stops with ``DataUnavailableError`` (a
dataset the notebook loads on its defaults, ``helpers.notebooks.parameters.notebook_datasets``,
cannot be loaded offline), that cell and every later cell of the notebook are skipped with one
reason, ``helpers.data.NO_DATA``. Cells before it (and notebooks that draw only from the committed
cache) are still compared.
"""

import json

import pytest

_NO_DATA = {}  # notebook path -> the missing datasets, once one of its cells stopped for want of data


def _has_stored_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    return any(cell.get("outputs") for cell in cells if cell["cell_type"] == "code")


def pytest_ignore_collect(collection_path, config):
    if collection_path.suffix == ".ipynb" and config.getoption("nbval", default=False):
        return not _has_stored_outputs(collection_path)
    return None


def _notebook(item):
    path = getattr(item, "path", None)
    return str(path) if path is not None and path.suffix == ".ipynb" else None


def _stopped_for_data(item, call) -> bool:
    """The cell raised DataUnavailableError, and a dataset its notebook loads is missing."""
    error = call.excinfo.value if call.excinfo else None
    text = f"{error}\n{getattr(error, 'inner_traceback', '')}"
    if "DataUnavailableError" not in text:
        return False
    from helpers.data import missing_data
    from helpers.notebooks.parameters import notebook_datasets

    return bool(missing_data(notebook_datasets(item.path.stem)))


def pytest_runtest_setup(item):
    notebook = _notebook(item)
    if notebook in _NO_DATA:
        from helpers.data import NO_DATA

        pytest.skip(NO_DATA)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    notebook = _notebook(item)
    if notebook and report.when == "call" and report.failed and _stopped_for_data(item, call):
        from helpers.data import NO_DATA

        _NO_DATA[notebook] = True
        report.outcome = "skipped"
        report.longrepr = (notebook, 0, f"Skipped: {NO_DATA}")
