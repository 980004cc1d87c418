"""What every notebook does right after installing the package (its one-line setup cell)."""

from __future__ import annotations


def setup():
    """Quiet TensorFlow's start-up notices (before anything imports it), set the figure style
    and pandas' display width. Returns nothing."""
    from .runtime import quiet_import

    quiet_import()
    import pandas as pd

    from . import plotting

    plotting.set_style()
    pd.set_option("display.width", 140)
