"""Progress bars that keep stored notebooks clean.

``tqdm.auto`` draws a widget in Jupyter when ipywidgets is installed; without it, it warns
(``TqdmWarning: IProgress not found``) and falls back to text. The project does not depend on
ipywidgets (widget state is random and would change every stored notebook), so this picks
the widget only where it is available and plain text otherwise, without the warning. Stored
notebooks are cleaned of either by ``python -m helpers.notebooks clean``.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("ipywidgets") is not None:
    from tqdm.auto import tqdm, trange
else:
    from tqdm.std import tqdm, trange

__all__ = ["tqdm", "trange"]
