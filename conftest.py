"""pytest set-up shared by tests/ and the nbval run over notebooks/."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# On the project's machines the offline datasets sit in shared/data beside the checkout.
_shared = Path(__file__).resolve().parent.parent / "shared" / "data"
if "PRUNING_DATA_DIR" not in os.environ and _shared.exists():
    os.environ["PRUNING_DATA_DIR"] = str(_shared)
