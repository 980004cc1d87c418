"""The logistic learning-rate factor S(e) and the combined schedule (REPRODUCTION_NOTES.md §6)."""

import numpy as np
import pytest

from helpers.learning_rate import PaperSchedule, logistic_factor

# S(e), e = 0..29, for E = 30 as listed in REPRODUCTION_NOTES.md §6.
SPEC_MNIST = [1, .9999, .9999, .9998, .9998, .9996, .9994, .9991, .9986, .9978, .9965, .9946, .9916,
              .9870, .9799, .9690, .9526, .9281, .8927, .8431, .7771, .6947, .5998, .5002, .4053, .3229,
              .2569, .2073, .1719, .1474]


def test_logistic_factor_matches_spec_list():
    values = [logistic_factor(e, 30) for e in range(30)]
    np.testing.assert_allclose(values, SPEC_MNIST, atol=6e-5)


def test_logistic_factor_cifar_points():
    for epoch, expected in [(50, 0.99), (95, 0.52), (120, 0.15), (124, 0.134)]:
        assert logistic_factor(epoch, 125) == pytest.approx(expected, abs=0.006)


def test_tensor_and_python_versions_agree():
    import keras

    for e in [0, 1, 10, 22, 29]:
        assert float(keras.ops.convert_to_numpy(logistic_factor(keras.ops.convert_to_tensor(e), 30))) == \
            pytest.approx(logistic_factor(e, 30), rel=1e-6)


def test_schedule_formula_in_graph():
    eta0, steps, delta = 0.01, 1875, 0.01 / 30
    schedule = PaperSchedule(eta0, steps, 30, decay=delta, logistic=True)
    for k in [0, 1, 1874, 1875, 20_000, 56_249]:
        expected = eta0 * logistic_factor(k // steps, 30) / (1 + delta * k)
        assert schedule.value(k) == pytest.approx(expected, rel=1e-9)
        import keras
        assert float(keras.ops.convert_to_numpy(schedule(k))) == pytest.approx(expected, rel=1e-5)


def test_schedule_rejects_bad_values():
    with pytest.raises(ValueError):
        PaperSchedule(-1.0, 10, 10)
    with pytest.raises(ValueError):
        PaperSchedule(0.1, 10, 10, decay=-0.5)
    with pytest.raises(ValueError):
        PaperSchedule(0.1, 0, 10)
