"""The paper's experiments as lists of ``RunConfig``: one definition shared by the notebooks
and by long background sweeps (``python -m helpers.experiments smgd --dataset mnist``).
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from .runner import RunConfig, run_sweep

# The optimizer comparison of REPRODUCTION_NOTES.md §6.1: multi-objective methods and their Keras baselines.
PAPER_OPTIMIZERS = {"mnist": ("smgd", "madam", "sgd", "adam"),
                    "cifar10": ("smgd", "mrmsprop", "sgd", "rmsprop")}
PAPER_EPOCHS = {"mnist": 30, "cifar10": 125}
ITP_CHOICES = {"on": (True,), "off": (False,), "both": (True, False)}


def smgd_comparison(dataset="mnist", optimizers=None, itp="both", epochs=None, seeds=(0,),
                    learning_rates=None, batch_size=None, train_subset=None, protocol="faithful",
                    eval_train=True):
    """Configs of notebook 03: every (optimizer, itp, seed), in seed-major order so that an
    interrupted sweep has finished whole seeds first.

    ``learning_rates`` maps optimizer -> eta0 (per-optimizer rates, REPRODUCTION_NOTES.md, B6); missing ones
    take the protocol default.
    """
    if itp not in ITP_CHOICES:
        raise ValueError(f"itp must be one of {', '.join(ITP_CHOICES)}, got {itp!r}")
    optimizers = tuple(optimizers or PAPER_OPTIMIZERS[dataset])
    learning_rates = dict(learning_rates or {})
    unknown = set(learning_rates) - set(optimizers)
    if unknown:
        raise ValueError(f"learning rates given for optimizers not in the run: {sorted(unknown)}")
    configs = [RunConfig(dataset=dataset, optimizer=opt, itp=flag, epochs=epochs or PAPER_EPOCHS[dataset],
                         seed=seed, learning_rate=learning_rates.get(opt), batch_size=batch_size,
                         train_subset=train_subset, protocol=protocol, eval_train=eval_train)
               for seed, opt, flag in itertools.product(seeds, optimizers, ITP_CHOICES[itp])]
    return [c.resolved() for c in configs]  # validates everything before any training


# The 26 weightings of the original paretofront.py, in its list order (lambda1 = 1 - lambda2).
ORIGINAL_GRID = (0, 1e-4, 3e-4, 5e-4, 7e-4, 9e-4, 1e-5, 3e-5, 5e-5, 7e-5, 9e-5, 1e-3, 3e-3, 5e-3, 7e-3, 9e-3,
                 1e-2, 2e-2, 1.5e-2, 2.5e-2, 3e-2, 3.5e-2, 5e-2, 7e-2, 9e-2, 0.1)


def weighted_sum_run(lambda2, epochs=10, seed=0, learning_rate=1e-3, train_subset=None, validation_size=0,
                     protocol="faithful", optimizer="madam", lambda1=None, scalarization="separate"):
    """One weighted-sum run of the search scripts (REPRODUCTION_NOTES.md §6.2): MAdam with fixed weights
    (lambda1, lambda2), lambda1 = 1 - lambda2 unless given, ITP on, no schedule and no decay,
    batch 32, on MNIST. ``scalarization="separate"`` is the published MAdam (one moment stream
    per objective); ``"joint"`` is Adam on the weighted sum itself."""
    if not 0 <= lambda2 <= 1:
        raise ValueError(f"lambda2 must be in [0, 1], got {lambda2}")
    lambda1 = 1.0 - lambda2 if lambda1 is None else float(lambda1)
    return RunConfig(dataset="mnist", optimizer=optimizer, weights=(lambda1, lambda2), itp=True,
                     epochs=epochs, seed=seed, learning_rate=learning_rate, lr_schedule="constant",
                     train_subset=train_subset, validation_size=validation_size, protocol=protocol,
                     eval_train=False, scalarization=scalarization).resolved()


def weighted_sum_grid(dense_points=40, dense_max=9e-4, include_original=True, **run_kwargs):
    """Configs of notebook 04: the original 26 weightings plus ``dense_points`` values of lambda2
    evenly spaced in [0, dense_max] (Fig. 4's range), without duplicates."""
    if dense_points < 0:
        raise ValueError("dense_points must be >= 0")
    values = list(ORIGINAL_GRID) if include_original else []
    values += [float(v) for v in np.linspace(0.0, dense_max, dense_points)] if dense_points else []
    unique = list(dict.fromkeys(round(v, 12) for v in values))
    return [weighted_sum_run(v, **run_kwargs) for v in unique]


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run (or resume) a sweep of the paper's experiments into the cache.")
    parser.add_argument("experiment", choices=["smgd", "grid"])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--optimizers", nargs="*")
    parser.add_argument("--itp", default="both", choices=list(ITP_CHOICES))
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--train-subset", type=int)
    parser.add_argument("--protocol", default="faithful")
    parser.add_argument("--scalarization", default="separate", choices=["separate", "joint"])
    parser.add_argument("--shard", default="0/1", help="i/n: run every n-th config starting at i (one per process)")
    args = parser.parse_args(argv)
    if args.experiment == "smgd":
        configs = smgd_comparison(args.dataset, args.optimizers, args.itp, args.epochs, tuple(args.seeds),
                                  train_subset=args.train_subset, protocol=args.protocol)
    else:
        configs = weighted_sum_grid(seed=args.seeds[0], train_subset=args.train_subset, protocol=args.protocol,
                                    scalarization=args.scalarization)
    index, count = (int(v) for v in args.shard.split("/"))
    run_sweep(configs[index::count])


if __name__ == "__main__":
    main()


# ---------------------------------------------------------------------------------------------
# Classic post-training pruning (notebook 06, seed 002)
# ---------------------------------------------------------------------------------------------

SEED002_KS = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)


def trained_model(model_name, dataset, epochs, batch_size, learning_rate, seed=0, train_subset=None,
                  model_kwargs=None, recompute=False, progress=True, optimizer="adam", data_kwargs=None):
    """Train a network (Adam, or SGD with momentum 0.9) on sparse cross-entropy, or load its
    cached weights.

    Weights are cached under ``results/cache/models`` (ignored by git: models are not committed)
    by a hash of the arguments; returns ``(model, data)``.
    """
    import keras

    from . import data as data_lib
    from .cache import config_hash, default_cache_dir
    from .models import build_model

    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    config = dict(model=model_name, dataset=dataset, epochs=epochs, batch_size=batch_size,
                  learning_rate=learning_rate, seed=seed, train_subset=train_subset, model_kwargs=model_kwargs or {})
    if optimizer != "adam" or data_kwargs:  # keeps the keys of existing Adam caches unchanged
        config.update(optimizer=optimizer, data_kwargs=data_kwargs or {})
    path = default_cache_dir() / "models" / f"{model_name}-{dataset}-{config_hash(config)}.weights.h5"
    data = data_lib.load_dataset(dataset, train_subset=train_subset, seed=seed, **(data_kwargs or {}))
    model = build_model(model_name, seed=seed, **(model_kwargs or {}))
    opt = (keras.optimizers.Adam(learning_rate) if optimizer == "adam"
           else keras.optimizers.SGD(learning_rate, momentum=0.9))
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if path.exists() and not recompute:
        import warnings

        with warnings.catch_warnings():  # the compiled optimizer's slots are not needed: no warning
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(path)
        return model, data
    keras.utils.set_random_seed(seed)
    model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=epochs, verbose=2 if progress else 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.weights.h5")
    model.save_weights(tmp)
    tmp.replace(path)
    return model, data


def post_training_sweep(model, data, ks=SEED002_KS, finetune_epochs=1, batch_size=128, prune_bias=True,
                        progress=True):
    """Seed 002's experiment and beyond: for every k, prune a copy of the trained ``model`` and
    evaluate it on the test set.

    methods x variants: ``weight`` (per-layer magnitude; ``prune_bias`` = the seed's bias quirk)
    and ``unit`` (column L2 norm), each ``one-shot`` (the seed), ``fine-tuned`` (masks kept,
    ``finetune_epochs`` of Adam) and ``global`` (one threshold over all hidden layers; for
    ``unit`` the units are ranked across layers by their norm). The output layer is never pruned.
    Returns a list of rows ``dataset, method, variant, k, nominal_sparsity, effective_sparsity,
    test_acc, test_loss``.
    """
    import keras
    from .progress import tqdm

    from . import magnitude

    trained = model.get_weights()
    optimizer_config = model.optimizer.get_config() if model.optimizer else None
    rows = []
    jobs = [(method, variant, k) for method in ("weight", "unit") for variant in ("one-shot", "fine-tuned", "global")
            for k in ks]
    for method, variant, k in tqdm(jobs, desc=f"{data.name} sweep", disable=not progress, leave=False):
        model.set_weights(trained)
        magnitude.detach_masks(model)
        if variant == "global":
            masks = (magnitude.global_masks(model, k) if method == "weight" else _global_unit_masks(model, k))
        elif method == "weight":
            masks = magnitude.weight_masks(model, k, prune_bias=prune_bias)
        else:
            masks = magnitude.unit_masks(model, k)
        if variant == "fine-tuned" and k > 0:
            magnitude.attach_masks(model, masks)
            model.compile(optimizer=keras.optimizers.Adam.from_config(optimizer_config) if optimizer_config
                          else "adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=finetune_epochs, verbose=0)
        else:
            magnitude.apply_masks(model, masks)
        loss, accuracy = model.evaluate(data.x_test, data.y_test, batch_size=1024, verbose=0)
        rows.append({"dataset": data.name, "method": method, "variant": variant, "k": k,
                     "nominal_sparsity": magnitude.sparsity(model, include_output=False)["total"],
                     "effective_sparsity": magnitude.effective_sparsity(model),
                     "test_acc": float(accuracy), "test_loss": float(loss)})
    model.set_weights(trained)
    magnitude.detach_masks(model)
    return rows


def _global_unit_masks(model, fraction):
    """Units ranked across all hidden Dense layers by the L2 norm of their incoming weights,
    normalised by sqrt(fan-in) so wide and narrow layers compete fairly."""
    import numpy as np

    from . import magnitude

    layers = magnitude.prunable_layers(model)
    scores = [np.linalg.norm(l.kernel.numpy().reshape(-1, l.kernel.shape[-1]), axis=0) /
              np.sqrt(np.prod(l.kernel.shape[:-1])) for l in layers]
    flat = np.concatenate(scores)
    keep = magnitude.smallest_k_mask(flat, int(flat.size * fraction))
    masks, start = {}, 0
    for layer, score in zip(layers, scores):
        units = keep[start:start + score.size]
        start += score.size
        masks[layer.kernel.path] = np.broadcast_to(units, tuple(layer.kernel.shape)).copy()
        if layer.use_bias:
            masks[layer.bias.path] = units.copy()
    return masks


# ---------------------------------------------------------------------------------------------
# Structured, global and iterative pruning of the CIFAR CNN (notebook 07, seed 003)
# ---------------------------------------------------------------------------------------------

SEED003_TARGETS = (0.1, 0.3, 0.5, 0.6, 0.7, 0.9)
STRUCTURE_METHODS = ("l1_unstructured", "l2_structured", "global_unstructured")


def structure_masks(model, method, target):
    """Seed 003's three methods. Unstructured ones prune every conv and linear layer, the output
    layer included (the seed's case (c)); structured pruning removes filters/units of every
    layer but the output one (its 10 classes must stay)."""
    from . import magnitude

    if method == "l1_unstructured":
        return magnitude.weight_masks(model, target, include_output=True)
    if method == "l2_structured":
        return magnitude.unit_masks(model, target)
    if method == "global_unstructured":
        return magnitude.global_masks(model, target, include_output=True)
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(STRUCTURE_METHODS)}")


def structure_sweep(model, data, targets=SEED003_TARGETS, methods=STRUCTURE_METHODS, retrain_epochs=1,
                    gmp_epochs=2, batch_size=32, learning_rate=1e-3, latency_batch=256, latency_repeats=10,
                    progress=True):
    """Notebook 07's experiment: every method one-shot (prune, no retraining) and iterative
    (prune to each target in turn, retraining ``retrain_epochs`` after each step), plus gradual
    magnitude pruning (per layer, polynomial schedule over ``gmp_epochs`` of fine-tuning) to each
    target. Structured networks are compacted before timing. Returns rows with
    ``method, schedule, target_sparsity, achieved_sparsity, test_acc, params, flops, latency_ms``.
    """
    import keras
    from .progress import tqdm

    from . import costs, magnitude
    from .compaction import compact

    trained = model.get_weights()
    dense_flops = costs.flops(model)

    def recompile():
        model.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def row(method, schedule, target):
        _, accuracy = model.evaluate(data.x_test, data.y_test, batch_size=1024, verbose=0)
        timed = compact(model)[0] if method == "l2_structured" else model
        return {"method": method, "schedule": schedule, "target_sparsity": target,
                "achieved_sparsity": magnitude.sparsity(model, include_output=True)["total"],
                "test_acc": float(accuracy), "params": costs.parameters(timed),
                "flop_ratio": costs.flops(timed, nonzero_only=method != "l2_structured") / dense_flops,
                "latency_ms": 1e3 * costs.latency(timed, latency_batch, latency_repeats)}

    def reset():
        magnitude.detach_masks(model)
        model.set_weights(trained)
        recompile()

    rows = []
    total = len(methods) * 2 * len(targets) + len(targets)
    bar = tqdm(total=total, desc="structure sweep", disable=not progress, leave=False)
    reset()
    rows.append(row("dense", "none", 0.0))
    for method in methods:
        for target in targets:  # one-shot, from the trained weights each time
            reset()
            magnitude.apply_masks(model, structure_masks(model, method, target))
            rows.append(row(method, "one-shot", target))
            bar.update(1)
        reset()
        for target in sorted(targets):  # iterative: each step prunes the retrained network further
            magnitude.attach_masks(model, structure_masks(model, method, target))
            model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=retrain_epochs, verbose=0)
            rows.append(row(method, "iterative", target))
            bar.update(1)
    steps_per_epoch = -(-len(data.x_train) // batch_size)
    for target in targets:
        reset()
        gmp = magnitude.GradualMagnitudePruning(model, final_sparsity=target, include_output=True,
                                                end_step=max(1, int(0.75 * gmp_epochs * steps_per_epoch)),
                                                frequency=max(1, steps_per_epoch // 10))
        model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=gmp_epochs, verbose=0, callbacks=[gmp])
        rows.append(row("gmp", "gradual", target))
        bar.update(1)
    bar.close()
    reset()
    return rows
