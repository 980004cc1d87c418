"""The package's own pruning errors: each names the layer and the reason."""


class PruningError(ValueError):
    """A pruning request that cannot be carried out as asked (it names the layer and why)."""


class CompactionError(PruningError, NotImplementedError):
    """``compact`` cannot make this model smaller with exactly the same outputs; it names the layer
    and the reason instead of returning a model that computes something else."""
