"""Pruning for any Keras 3 model: the one home of every pruning idea in the package.

Where a new pruning method goes:

- ``criteria``: *what* to prune, importance x granularity x scope (``masks_for(model, amount,
  importance=..., granularity="weight"|"unit"|"filter", scope="layer"|"global",
  ignored_layers=[...])``); a new importance is an ``Importance`` subclass registered with
  ``@register_importance("name")``, in your code or in ``criteria.py``;
- ``schedules``: *when*, one-shot, iterative, gradual (``GradualMagnitudePruning`` during fit);
- ``masks``: how a decision is held: a ``{variable path: keep-mask}`` dict, the one
  ``PruningConstraint`` (ITP threshold and/or mask), ``attach_masks`` / ``detach_masks``, and
  ``strip`` (a plain Keras model);
- ``itp``: intra-training pruning, the paper's threshold after every update;
- ``dependency``: the dependency graph, ``DependencyGraph``: which channels are coupled (residual
  Adds, Concatenates, depthwise and BN layers) and must be pruned together, as groups;
- ``compaction``: ``compact`` rewrites the graph without the removed channels, exactly or not at all;
- ``costs``: parameters, FLOPs, latency, saved size, nonzero counts and sparsity;
- ``budget``: pruning to a black-box cost budget (project 004): the layer and dependency-group
  environments, the Lagrangian policy-gradient agent, its search, and the uniform and global
  bisection baselines; ``masks.retrain_with_masks`` is the masked retrain after any of them and
  ``masks.recalibrate_batch_norm`` re-estimates BN statistics after channels were removed.

- ``selection``: which layers pruning touches (``prunable_layers``, ``output_layer``: the graph's
  output layers are left unpruned unless asked); plain layer queries (``all_layers``) are in
  ``helpers.layers``.
README.md, "Pruning any Keras model", shows the whole API on a model that is not the paper's.
"""

from . import budget, compaction, costs, criteria, itp, masks, schedules, selection
from .compaction import compact, removable_channels
from .dependency import DependencyGraph
from .errors import CompactionError, PruningError
from .costs import count_nonzero, effective_sparsity, nonzero_counts, parameters, sparsity
from .criteria import Importance, keep_masks, masks_for, register_importance, smallest_k_mask
from .itp import DEFAULT_THRESHOLD, apply_threshold, disable_itp, enable_itp
from .masks import (PruningConstraint, apply_masks, attach_masks, current_masks, detach_masks, load_masks,
                    recalibrate_batch_norm, retrace, retrain_with_masks, save_masks, strip)
from .selection import output_layer, output_layers, prunable_layers
from .schedules import (GradualMagnitudePruning, iterative_pruning, kept_count, one_shot, polynomial_sparsity,
                        top_magnitude_mask)

__all__ = [
    "CompactionError", "DependencyGraph", "Importance", "PruningError", "load_masks", "output_layers",
    "register_importance", "removable_channels",
    "save_masks", "DEFAULT_THRESHOLD", "GradualMagnitudePruning", "PruningConstraint", "apply_masks", "apply_threshold",
    "attach_masks", "budget", "compact", "compaction", "costs", "count_nonzero", "criteria", "current_masks", "detach_masks",
    "disable_itp", "effective_sparsity", "enable_itp", "itp", "iterative_pruning", "keep_masks", "kept_count",
    "masks", "masks_for", "nonzero_counts", "one_shot", "output_layer", "parameters", "polynomial_sparsity", "prunable_layers",
    "recalibrate_batch_norm", "retrace", "retrain_with_masks", "schedules", "smallest_k_mask", "sparsity", "strip", "top_magnitude_mask",
]
