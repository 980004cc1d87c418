"""Numbers read from the paper (Reiners, Klamroth & Stiglmayr, arXiv 2008.13590), in one place.

Fig. 4's values are read by eye from its low-resolution PNG (the paper's text was not
available): ranges per band of lambda (grey level of the points), and the figure's axes.
The MNIST reference lines are those of the paper's optimizer-comparison plots.
"""

from __future__ import annotations

# Fig. 4: MNIST, LeNet-5, weighted sums, lambda in [0, 9e-4]. Each band: the lambda range it
# stands for (lo <= lambda2 < hi), and the paper's ranges of test CE, l1 of the dense kernels,
# nonzero weights and test accuracy.
FIG4_BANDS = (
    {"band": "≈ 0", "lo": 0.0, "hi": 0.5e-4, "test_ce": (0.037, 0.040), "l1_dense": (2_450, 2_500),
     "nnz_dense": (23_000, 25_000), "test_acc": (0.990, 0.991)},
    {"band": "1-2e-4", "lo": 0.5e-4, "hi": 2.5e-4, "test_ce": (0.037, 0.052), "l1_dense": (500, 1_550),
     "nnz_dense": (6_500, 18_000), "test_acc": (0.985, 0.990)},
    {"band": "3-5e-4", "lo": 2.5e-4, "hi": 5.5e-4, "test_ce": (0.05, 0.07), "l1_dense": (150, 270),
     "nnz_dense": (1_000, 3_700), "test_acc": (0.979, 0.987)},
    {"band": "6-9e-4", "lo": 5.5e-4, "hi": 9.5e-4, "test_ce": (0.077, 0.20), "l1_dense": (30, 110),
     "nnz_dense": (300, 1_500), "test_acc": (0.957, 0.972)},
)
FIG4_LAMBDA_MAX = 9e-4  # the top of Fig. 4's grey scale
# Fig. 4's axes: (a) test CE vs l1 of the dense kernels, (b) test accuracy vs nonzero weights.
FIG4_AXES = {"a": {"x": (0.0, 0.25), "y": (-200.0, 2_700.0)}, "b": {"x": (0.93, 1.0), "y": (-3_000.0, 30_000.0)}}
# The knee the paper's Fig. 4 shows (REPRODUCTION_NOTES.md §9.1): lambda ~ 3-5e-4, CE 0.05-0.07, l1 150-270,
# 1,000-3,500 nonzeros, test accuracy 0.979-0.987.
FIG4_KNEE = {"test_ce": (0.05, 0.07), "l1_dense": (150, 270), "nnz_dense": (1_000, 3_500), "test_acc": (0.979, 0.987)}

# The reference lines of the paper's MNIST optimizer-comparison plots (LeNet-5, with ITP).
MNIST_REFERENCE_ACCURACY = 0.989
MNIST_REFERENCE_NONZEROS = {"denselayer1": 2_107, "denselayer2": 300, "denselayer3": 170}
MNIST_REFERENCE_PRUNED = {"denselayer1": 0.956, "denselayer2": 0.970, "denselayer3": 0.798}
MNIST_REFERENCE_PRUNED_DENSE = 0.956  # of all 58,920 dense weights
