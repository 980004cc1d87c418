"""nbval set-up for ``pytest --nbval``.

nbval re-executes a notebook on its default parameters and compares the outputs stored in it.
A notebook stored without outputs has nothing to compare yet: its default sweep is still
being computed (executing it would train for hours), so nbval skips it until `make figures`
has run it from a complete cache. tests/test_notebooks.py executes every notebook on tiny
parameters regardless.
"""

import json


def _has_stored_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    return any(cell.get("outputs") for cell in cells if cell["cell_type"] == "code")


def pytest_ignore_collect(collection_path, config):
    if collection_path.suffix == ".ipynb" and config.getoption("nbval", default=False):
        return not _has_stored_outputs(collection_path)
    return None
