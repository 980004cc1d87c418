"""The paper's experiments and the notebooks' procedures, one module per study: one definition
shared by the notebooks and by long background sweeps
(``python -m helpers.experiments smgd --dataset mnist``, see ``__main__``).

- ``smgd``: notebook 03, the optimizer comparison and the learning-rate ablation;
- ``weighted_sum``: notebooks 04 and 05, weighted-sum runs, the grid and ``KneeSearch``;
- ``training``: ``trained_model``, the cached pre-trained networks of notebooks 06-08;
- ``post_training``: notebook 06, post-training pruning (``PostTraining``);
- ``structure``: notebook 07, structured, global and iterative pruning (``StructureStudy``);
- ``budget``: notebook 08, budget-constrained pruning (``prune_to_budget``, ``BudgetPruning``; the
  method itself, environments, agent and baselines, is ``helpers.pruning.budget``).

Every study has one shape (``study.Study``): a frozen dataclass of checked settings whose
``config(**point)`` is the cache configuration of one result.

Every public name is importable from here (``experiments.smgd_comparison``).
"""

from . import budget, post_training, smgd, structure, study, training, weighted_sum
from .budget import (BUDGET_DATASETS, BUDGET_GRANULARITY, BUDGET_METHODS, BudgetPruning, budget_protocol, budget_summary, budget_sweep,
                     budget_table, budget_verdict, compaction_table, format_mean_std, mean_std, prune_to_budget,
                     verdict_labels)
from .post_training import PROJECT002_KS, PostTraining, compaction_rows, post_training_masks, post_training_sweep
from .smgd import (ITP_CHOICES, LR_ABLATION_RATES, PAPER_EPOCHS, PAPER_OPTIMIZERS, SUMMARY_COLUMNS, SUMMARY_TAIL,
                   SHARED_LEARNING_RATES, backend_label, cached_runs, closest_to_reference, collapse_transitions, comparison_summary,
                   comparison_table, lr_ablation, lr_ablation_findings, lr_ablation_followup, lr_ablation_table, reference_crossings,
                   shared_lr_comparison, shared_lr_table, smgd_comparison)
from .structure import (PROJECT003_EXPERIMENTS, PROJECT003_PRINTED, PROJECT003_TARGETS, STRUCTURE_METHODS, StructureStudy,
                        per_layer_sparsity, project003_comparison, project003_table, structure_masks,
                        structure_sweep)
from .study import Study
from .training import trained_model, weights_name
from .weighted_sum import (ORIGINAL_GRID, SEARCH_METHODS, KneeSearch, fig4_band_table, fig4_darkest_band,
                           fig4_scale_points, fig4_scale_summary, fig4_scale_table, grid_table, knee_region_verdict,
                           lambda_at, weighted_sum_grid, weighted_sum_run)

__all__ = [
    "BUDGET_DATASETS", "BUDGET_GRANULARITY", "BUDGET_METHODS", "ITP_CHOICES", "LR_ABLATION_RATES", "ORIGINAL_GRID", "PAPER_EPOCHS",
    "PAPER_OPTIMIZERS", "SEARCH_METHODS", "PROJECT002_KS", "PROJECT003_EXPERIMENTS", "PROJECT003_PRINTED", "PROJECT003_TARGETS", "project003_comparison", "project003_table", "STRUCTURE_METHODS", "Study", "SUMMARY_COLUMNS",
    "SUMMARY_TAIL", "BudgetPruning", "backend_label", "KneeSearch", "PostTraining", "StructureStudy", "budget", "budget_table", "budget_protocol", "budget_summary", "budget_sweep", "compaction_table", "format_mean_std", "mean_std", "verdict_labels",
    "budget_verdict", "closest_to_reference", "compaction_rows", "comparison_summary", "comparison_table",
    "fig4_band_table", "fig4_darkest_band", "fig4_scale_points", "fig4_scale_summary", "fig4_scale_table",
    "knee_region_verdict", "lambda_at", "grid_table",
    "lr_ablation", "lr_ablation_findings", "lr_ablation_followup", "lr_ablation_table", "reference_crossings", "shared_lr_comparison",
    "shared_lr_table", "SHARED_LEARNING_RATES", "cached_runs", "collapse_transitions", "per_layer_sparsity", "post_training", "post_training_masks",
    "post_training_sweep", "prune_to_budget", "smgd", "smgd_comparison", "structure", "structure_masks",
    "structure_sweep", "trained_model", "training", "weighted_sum", "weighted_sum_grid",
    "weighted_sum_run", "weights_name",
]
