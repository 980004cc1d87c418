"""The pruning criteria (importance x granularity x scope) give exactly the masks of the five
builders they replaced (magnitude.weight/global/unit_masks, experiments._global_unit_masks and
pruning.budget.LayerwisePruningEnv's list masks): those builders are kept here, verbatim in what they
compute, as the reference, and compared on seeded networks of every kind the notebooks prune."""

import numpy as np
import pytest

from helpers import experiments, models, pruning
from helpers.pruning import prunable_layers
from helpers.pruning import costs

# --------------------------------------------------------------- the replaced builders (reference)


def _smallest_k(values, k):
    flat = np.abs(values).ravel()
    keep = np.ones(flat.size, dtype=bool)
    if k > 0:
        keep[np.argsort(flat, kind="stable")[:k]] = False
    return keep.reshape(values.shape)


def legacy_weight_masks(model, fraction, include_output=False, prune_bias=False):
    masks = {}
    for layer in prunable_layers(model, None, include_output):
        kernel = layer.kernel.numpy()
        masks[layer.kernel.path] = _smallest_k(kernel, int(kernel.size * fraction))
        if prune_bias and layer.use_bias:
            bias = layer.bias.numpy()
            masks[layer.bias.path] = _smallest_k(bias, int(bias.size * fraction))
    return masks


def legacy_global_masks(model, fraction, include_output=False):
    selected = prunable_layers(model, None, include_output)
    values = [layer.kernel.numpy() for layer in selected]
    flat = np.concatenate([np.abs(v).ravel() for v in values])
    keep = _smallest_k(flat, int(flat.size * fraction))
    masks, start = {}, 0
    for layer, value in zip(selected, values):
        masks[layer.kernel.path] = keep[start:start + value.size].reshape(value.shape)
        start += value.size
    return masks


def legacy_unit_masks(model, fraction):
    masks = {}
    for layer in prunable_layers(model):
        kernel = layer.kernel.numpy()
        norms = np.sqrt(np.square(kernel.reshape(-1, kernel.shape[-1])).sum(axis=0))
        keep_units = _smallest_k(norms, int(len(norms) * fraction))
        masks[layer.kernel.path] = np.broadcast_to(keep_units, kernel.shape).copy()
        if layer.use_bias:
            masks[layer.bias.path] = keep_units.copy()
    return masks


def legacy_global_unit_masks(model, fraction):
    layers = prunable_layers(model)
    scores = [np.linalg.norm(l.kernel.numpy().reshape(-1, l.kernel.shape[-1]), axis=0) /
              np.sqrt(np.prod(l.kernel.shape[:-1])) for l in layers]
    flat = np.concatenate(scores)
    keep = _smallest_k(flat, int(flat.size * fraction))
    masks, start = {}, 0
    for layer, score in zip(layers, scores):
        units = keep[start:start + score.size]
        start += score.size
        masks[layer.kernel.path] = np.broadcast_to(units, tuple(layer.kernel.shape)).copy()
        if layer.use_bias:
            masks[layer.bias.path] = units.copy()
    return masks


def legacy_env_layer_masks(kernels, fractions):
    masks = []
    for kernel, f in zip(kernels, np.asarray(fractions, dtype=np.float64)):
        order = np.argsort(np.abs(kernel).ravel(), kind="stable")
        keep = np.ones(kernel.size, dtype=bool)
        keep[order[:int(kernel.size * f)]] = False
        masks.append(keep.reshape(kernel.shape))
    return masks


# --------------------------------------------------------------- comparisons

NETWORKS = {"mlp": lambda: models.mlp(seed=3, hidden=(64, 48, 32, 16)), "lenet5": lambda: models.lenet5(seed=1),
            "cifar_cnn": lambda: models.cifar_cnn(width=0.1, seed=2),
            "vgg": lambda: models.vgg(seed=0, input_shape=(16, 16, 1))}
KS = (0.0, 0.25, 0.5, 0.7, 0.9, 0.99)


def assert_same(new, old):
    assert list(new) == list(old)
    for path in old:
        np.testing.assert_array_equal(new[path], old[path], err_msg=path)


@pytest.fixture(scope="module", params=sorted(NETWORKS))
def network(request):
    return NETWORKS[request.param]()


@pytest.mark.parametrize("k", KS)
def test_post_training_masks_equal_the_replaced_builders(network, k):
    """Notebook 06's four mask kinds (and so results/06_*/sweep.csv's numbers)."""
    for prune_bias in (False, True):
        assert_same(experiments.post_training_masks(network, "weight", "one-shot", k, prune_bias),
                    legacy_weight_masks(network, k, prune_bias=prune_bias))
    assert_same(experiments.post_training_masks(network, "weight", "global", k), legacy_global_masks(network, k))
    assert_same(experiments.post_training_masks(network, "unit", "fine-tuned", k), legacy_unit_masks(network, k))
    assert_same(experiments.post_training_masks(network, "unit", "global", k), legacy_global_unit_masks(network, k))


@pytest.mark.parametrize("k", KS)
def test_structure_masks_equal_the_replaced_builders(network, k):
    """Notebook 07's three methods."""
    assert_same(experiments.structure_masks(network, "l1_unstructured", k),
                legacy_weight_masks(network, k, include_output=True))
    assert_same(experiments.structure_masks(network, "l2_structured", k), legacy_unit_masks(network, k))
    assert_same(experiments.structure_masks(network, "global_unstructured", k),
                legacy_global_masks(network, k, include_output=True))


def test_budget_environment_masks_equal_the_replaced_ones(network):
    """Notebook 08's environment: per-layer fractions and the global baseline."""
    env = pruning.budget.LayerwisePruningEnv(network, np.zeros((2, *network.input_shape[1:])), np.zeros(2),
                                             costs.ParameterFraction(network))
    rng = np.random.default_rng(0)
    for fractions in (rng.uniform(0, 0.98, env.n_layers), np.full(env.n_layers, 0.5), np.zeros(env.n_layers)):
        for new, old in zip(env.layer_masks(fractions), legacy_env_layer_masks(env.kernels, fractions)):
            np.testing.assert_array_equal(new, old)
    for f in (0.0, 0.3, 0.77, 0.98):
        reference = legacy_global_masks(network, f, include_output=True)
        for layer, mask in zip(env.layers, env.global_masks(f)):
            np.testing.assert_array_equal(mask, reference[layer.kernel.path])


def test_criteria_axes_and_ignored_layers():
    model = NETWORKS["lenet5"]()
    masks = pruning.masks_for(model, 0.5, granularity="filter", ignored_layers=["denselayer3", "denselayer1"],
                              members="producers")
    assert set(masks) == {"conv1/kernel", "conv1/bias", "conv2/kernel", "conv2/bias", "denselayer2/kernel",
                          "denselayer2/bias"}
    # every member of a group: the consumers' input slices too (denselayer1 reads conv2 through Flatten)
    coupled = pruning.masks_for(model, 0.5, granularity="filter", ignored_layers=["denselayer3", "denselayer1"])
    assert set(coupled) == set(masks) | {"denselayer1/kernel", "denselayer1/bias", "denselayer3/kernel",
                                         "denselayer3/bias"}
    flat_rows = ~coupled["denselayer1/kernel"].all(axis=1)  # (positions x 16 channels) rows removed
    np.testing.assert_array_equal(flat_rows, np.tile(~coupled["conv2/bias"], flat_rows.size // 16))
    assert coupled["denselayer1/bias"].all() and coupled["denselayer3/bias"].all()
    conv1 = model.get_layer("conv1").kernel.numpy()
    l1 = np.abs(conv1).reshape(-1, 6).sum(axis=0)
    by_l1 = pruning.masks_for(model, 0.5, importance="l1", granularity="filter", layers=["conv1"],
                              members="producers")["conv1/bias"]
    assert l1[~by_l1].max() <= l1[by_l1].min() and (~by_l1).sum() == 3
    layer_and_global = [pruning.masks_for(model, 0.8, scope=s, ignored_layers=[model.get_layer("denselayer3")])
                        for s in ("layer", "global")]
    assert [sum((~m).sum() for m in ms.values()) for ms in layer_and_global][0] <= \
        sum(int(0.8 * np.prod(model.get_layer(n).kernel.shape)) for n in ("conv1", "conv2", "denselayer1", "denselayer2"))
    per_layer = pruning.masks_for(model, [0.1, 0.2, 0.3, 0.4, 0.5])
    assert [round(1 - m.mean(), 1) for m in per_layer.values()] == [0.1, 0.2, 0.3, 0.4, 0.5]
    for bad in (dict(importance="taylor"), dict(importance="hessian"), dict(granularity="channel"), dict(scope="network"),
                dict(scope="global", include_bias=True), dict(normalize="fan_in"), dict(ignored_layers=["nope"])):
        with pytest.raises(ValueError):
            pruning.masks_for(model, 0.5, **bad)
    with pytest.raises(ValueError, match="one amount"):
        pruning.masks_for(model, [0.1, 0.2], scope="global")
