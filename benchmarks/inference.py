"""Benchmark 3: does pruning make inference faster? Dense vs masked vs compacted networks.

Two structure-pruned networks: the 784-1000-1000-500-200-10 MLP of project 002 with hidden units
removed, and the CIFAR CNN of project 003 (width 0.5) with conv filters and dense units removed, each
at several pruning fractions (L2 norm of the unit, one-shot). For each: the **masked** network
(zeros in the full-size matrices: what tfmot and torch.nn.utils.prune give you) and the
**compacted** network (``helpers.pruning.compact``: physically smaller, same outputs), timed
with ``predict_on_batch`` (median of ``--repeats`` after warm-up) at batch 1 and 256 on this CPU,
with the gzip size of the saved ``.keras`` file and the FLOP ratio (the ideal speed-up).

Weights are the initial ones: latency and size do not depend on training, and the masks follow
the same L2-norm rule either way. The outputs of compacted and masked networks are compared.

Writes ``results/benchmarks/inference.csv``.

    python benchmarks/inference.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import tempfile

from common import write_csv

from helpers.runtime import quiet_import

quiet_import()
import numpy as np  # noqa: E402

from helpers import models, pruning  # noqa: E402
from helpers.pruning import costs  # noqa: E402
from helpers.pruning import compact  # noqa: E402

NETWORKS = {
    "mlp": (lambda: models.mlp(seed=0), (28, 28, 1), (0.5, 0.75, 0.9)),
    "cifar_cnn_w0.5": (lambda: models.cifar_cnn(width=0.5, seed=0), (32, 32, 3), (0.25, 0.5, 0.75)),
}


def measure(name, variant, k, model, dense, x, repeats, tmp):
    return {"network": name, "variant": variant, "fraction": k, "params": int(costs.parameters(model, nonzero_only=False)),
            "flop_ratio": costs.flops(model) / dense["flops"],
            "latency_b1_ms": 1e3 * costs.latency(model, 1, repeats),
            "latency_b256_ms": 1e3 * costs.latency(model, 256, repeats),
            "gzip_kb": costs.saved_size(model, f"{tmp}/m.keras") / 1024,
            "max_abs_diff": float(np.abs(model.predict_on_batch(x) - dense["masked_out"]).max())
            if dense.get("masked_out") is not None else 0.0}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (build, shape, fractions) in NETWORKS.items():
            model = build()
            x = np.random.default_rng(0).random((256, *shape), dtype=np.float32)
            dense = {"flops": costs.flops(model)}
            rows.append(measure(name, "dense", 0.0, model, dense, x, args.repeats, tmp))
            initial = model.get_weights()
            for k in fractions:
                model.set_weights(initial)
                pruning.apply_masks(model, pruning.masks_for(model, k, importance="l2", granularity="unit", ignored_layers=[pruning.output_layer(model)]))
                dense["masked_out"] = model.predict_on_batch(x)
                rows.append(measure(name, "masked", k, model, dense, x, args.repeats, tmp))
                small, _ = compact(model)
                rows.append(measure(name, "compacted", k, small, dense, x, args.repeats, tmp))
                dense["masked_out"] = None
            base = rows[[r["network"] for r in rows].index(name)]
            for row in rows:
                if row["network"] == name:
                    for b in ("b1", "b256"):
                        row[f"latency_{b}_ratio"] = row[f"latency_{b}_ms"] / base[f"latency_{b}_ms"]
                    # 1.0 = the measured speed-up equals the ideal one; 1.5 = 1.5x slower than ideal
                    row["b256_latency_over_flop_ratio"] = row["latency_b256_ratio"] / row["flop_ratio"]
            for row in rows[-2 * len(fractions) - 1:]:
                print(f"{row['network']:15s} {row['variant']:9s} k={row['fraction']:.2f}  FLOPs x{row['flop_ratio']:.3f}  "
                      f"b1 {row['latency_b1_ms']:.3f} ms (x{row['latency_b1_ratio']:.2f})  "
                      f"b256 {row['latency_b256_ms']:.2f} ms (x{row['latency_b256_ratio']:.2f})  "
                      f"{row['gzip_kb']:.0f} kB  diff {row['max_abs_diff']:.1e}", flush=True)
    rows = [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    print(f"\nwrote {write_csv('inference.csv', rows)}")


if __name__ == "__main__":
    main()
