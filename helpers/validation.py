"""One validation layer for every entry point: exact types, finite numbers in range, known names.

Every public function that trains or prunes, ``RunConfig.resolved()`` and every notebook's
parameters cell check their inputs here *before any work*, so a bad value fails in a second
with a message that names the parameter, the value and what is allowed, instead of after an
hour of training (or, worse, silently: ``itp="False"`` is truthy).

Rules: wrong type -> ``TypeError``; right type, bad value -> ``ValueError``. A bool field
accepts only bools (``True``/``False``, numpy bools); an int field accepts ints and numpy ints
but not bools, floats or strings; a float field accepts ints and floats (numpy too) that are
finite, never bools or strings. Strings are never parsed: papermill's ``-p seeds [0]`` passes
the *string* ``"[0]"``, which is rejected with a hint to pass lists with ``-y``.

Three ways to use it, one per kind of entry point:

* a function or method: ``@validated(epochs=Epochs(), seeds=List(Seed(), unique=True))`` beside
  its signature checks (and normalises) those arguments of every call before the body runs;
  checks that relate two arguments stay in the body;
* one value: ``check_int("epochs", epochs, minimum=1)``, ``check_float("learning_rate", lr,
  minimum=0, min_open=True)``, ``check_bool``, ``check_choice``, ``check_fraction``,
  ``check_budget``, ``check_int_list``, ``check_epochs``, ``check_seed`` (writable folders:
  ``helpers.files.check_writable``);
* a namespace: ``check_parameters(values, specs)``; every notebook's specs are declared in its
  manifest entry (``helpers.notebooks``), whose ``check_notebook_parameters(globals(), "03_smgd")``
  checks a running notebook. A study's settings are dataclass fields that carry their spec
  (``helpers.experiments.study``).

Epochs and seeds have one spec each, used by ``RunConfig`` and by every procedure and notebook that
takes them (``Epochs``: at most ``MAX_EPOCHS``; ``Seed``: what Keras can seed, at most ``MAX_SEED``).
A number too large for a float (``10**400``) is a ``ValueError`` naming the parameter, never a bare
``OverflowError``. ``check_known_parameters`` rejects a name that is not a parameter, naming the
closest one (``-p epoch 3``: did you mean 'epochs'?).

This module imports nothing from ``helpers`` (numpy and the standard library only): every layer
can check its inputs with it.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import numbers

import numpy as np

PAPERMILL_LIST_HINT = "pass lists to papermill with -y, e.g. -y 'seeds: [0, 1]'"

# The longest protocol of the paper is 125 epochs; a bound keeps a typo (an extra digit or three)
# from starting a run that never ends. Raise it here if a study needs longer runs.
MAX_EPOCHS = 1000
# keras.utils.set_random_seed seeds NumPy's global generator, which takes seeds below 2**32.
MAX_SEED = 2 ** 32 - 1


def _show(value):
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


def _is_int(value):
    return isinstance(value, (numbers.Integral, np.integer)) and not _is_bool(value)


def _is_real(value):
    return isinstance(value, (numbers.Real, np.integer, np.floating)) and not _is_bool(value)


def _fmt(x):
    return f"{x:g}" if isinstance(x, float) else str(x)


class Spec:
    """A check: ``spec(name, value)`` returns the (normalised) value or raises."""

    description = "a value"

    def __call__(self, name, value):  # pragma: no cover - interface
        raise NotImplementedError

    def fail_type(self, name, value):
        hint = ""
        if isinstance(value, str) and isinstance(self, (List, Dict, Tuple)):
            hint = f"; {PAPERMILL_LIST_HINT}"
        elif isinstance(value, str) and not isinstance(self, (Str, Choice)):
            hint = "; strings are not parsed (with papermill, -p parses numbers and True/False, -y parses YAML)"
        raise TypeError(f"{name} must be {self.description}, got {_show(value)}{hint}")

    def fail_value(self, name, value, extra=""):
        raise ValueError(f"{name} must be {self.description}, got {_show(value)}{extra}")


class Bool(Spec):
    description = "a bool (True or False)"

    def __call__(self, name, value):
        if not _is_bool(value):
            self.fail_type(name, value)
        return bool(value)


class Int(Spec):
    """An int (python or numpy, not bool) in ``[minimum, maximum]``."""

    def __init__(self, minimum=None, maximum=None):
        self.minimum, self.maximum = minimum, maximum
        bounds = []
        if minimum is not None:
            bounds.append(f">= {minimum}")
        if maximum is not None:
            bounds.append(f"<= {maximum}")
        self.description = "an int" + (" " + " and ".join(bounds) if bounds else "")

    def __call__(self, name, value):
        if not _is_int(value):
            self.fail_type(name, value)
        value = int(value)
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            self.fail_value(name, value)
        return value


class Float(Spec):
    """A finite real number (int or float, python or numpy, not bool) in a range whose ends
    are closed unless ``min_open`` / ``max_open``."""

    def __init__(self, minimum=None, maximum=None, min_open=False, max_open=False):
        self.minimum, self.maximum, self.min_open, self.max_open = minimum, maximum, min_open, max_open
        if minimum is not None and maximum is not None:
            rng = f"in {'(' if min_open else '['}{_fmt(minimum)}, {_fmt(maximum)}{')' if max_open else ']'}"
        elif minimum is not None:
            rng = f"{'>' if min_open else '>='} {_fmt(minimum)}"
        elif maximum is not None:
            rng = f"{'<' if max_open else '<='} {_fmt(maximum)}"
        else:
            rng = ""
        self.description = "a finite number" + (f" {rng}" if rng else "")

    def __call__(self, name, value):
        if not _is_real(value):
            self.fail_type(name, value)
        try:
            value = float(value)
        except OverflowError:  # an int (or Fraction) beyond the largest float, e.g. 10**400
            self.fail_value(name, value, "; it is too large for a float")
        if not math.isfinite(value):
            self.fail_value(name, value)
        lo, hi = self.minimum, self.maximum
        if lo is not None and (value < lo or (self.min_open and value == lo)):
            self.fail_value(name, value)
        if hi is not None and (value > hi or (self.max_open and value == hi)):
            self.fail_value(name, value)
        return value


def Epochs(minimum=1):
    """A number of epochs in ``[minimum, MAX_EPOCHS]`` (``minimum=0``: epochs of fine-tuning that may be none)."""
    return Int(minimum, MAX_EPOCHS)


def Seed():
    """A random seed Keras can use: an int in ``[0, MAX_SEED]``."""
    return Int(0, MAX_SEED)


def Fraction():
    """A pruning fraction in [0, 1]."""
    return Float(0.0, 1.0)


def Budget():
    """A cost budget as a fraction of the dense network's cost, in (0, 1]."""
    return Float(0.0, 1.0, min_open=True)


class Str(Spec):
    description = "a str"

    def __call__(self, name, value):
        if not isinstance(value, str):
            self.fail_type(name, value)
        return value


class Choice(Spec):
    """One of ``choices`` (strings compared after ``normalize``, e.g. dataset aliases)."""

    def __init__(self, *choices, normalize=None):
        self.choices, self.normalize = tuple(choices), normalize
        self.description = "one of " + ", ".join(repr(c) for c in self.choices)

    def __call__(self, name, value):
        if not isinstance(value, str) and all(isinstance(c, str) for c in self.choices):
            self.fail_type(name, value)
        canonical = self.normalize(value) if self.normalize else value
        if canonical not in self.choices:
            raise ValueError(f"unknown {name} {value!r}: {name} must be {self.description}")
        return canonical


class Optional(Spec):
    """``None`` or a value that passes ``spec``."""

    def __init__(self, spec):
        self.spec = spec
        self.description = f"None or {spec.description}"

    def __call__(self, name, value):
        return None if value is None else self.spec(name, value)


class List(Spec):
    """A list (or tuple) of at least ``min_length`` items, each passing ``item``."""

    def __init__(self, item, min_length=1, unique=False):
        self.item, self.min_length, self.unique = item, min_length, unique
        size = f" (at least {min_length} items)" if min_length > 1 else " (not empty)" if min_length == 1 else ""
        self.description = f"a list{size}, each item {self.item.description}"

    def __call__(self, name, value):
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if not isinstance(value, (list, tuple)):
            self.fail_type(name, value)
        if len(value) < self.min_length:
            self.fail_value(name, value, f"; {PAPERMILL_LIST_HINT}" if len(value) == 0 else "")
        items = [self.item(f"{name}[{i}]", v) for i, v in enumerate(value)]
        if self.unique and len(set(map(repr, items))) != len(items):
            raise ValueError(f"{name} must not repeat an item, got {_show(value)}")
        return items


class Tuple(Spec):
    """A fixed-length list/tuple whose items pass ``items`` in order (returned as a list)."""

    def __init__(self, *items):
        self.items = items
        self.description = "a list [" + ", ".join(s.description for s in items) + "]"

    def __call__(self, name, value):
        if not isinstance(value, (list, tuple)):
            self.fail_type(name, value)
        if len(value) != len(self.items):
            self.fail_value(name, value)
        return [spec(f"{name}[{i}]", v) for i, (spec, v) in enumerate(zip(self.items, value))]


class Dict(Spec):
    """A dict whose keys pass ``key`` and values pass ``value``."""

    def __init__(self, key, value):
        self.key, self.value = key, value
        self.description = f"a dict {{{key.description}: {value.description}}}"

    def __call__(self, name, value):
        if not isinstance(value, dict):
            self.fail_type(name, value)
        return {self.key(f"{name} key", k): self.value(f"{name}[{k!r}]", v) for k, v in value.items()}


class Callable(Spec):
    description = "a callable"

    def __call__(self, name, value):
        if not callable(value):
            self.fail_type(name, value)
        return value


# --------------------------------------------------------------------------- functions


def check_bool(name, value, allow_none=False):
    return (Optional(Bool()) if allow_none else Bool())(name, value)


def check_int(name, value, minimum=None, maximum=None, allow_none=False):
    spec = Int(minimum, maximum)
    return (Optional(spec) if allow_none else spec)(name, value)


def check_float(name, value, minimum=None, maximum=None, min_open=False, max_open=False, allow_none=False):
    spec = Float(minimum, maximum, min_open, max_open)
    return (Optional(spec) if allow_none else spec)(name, value)


def check_choice(name, value, choices, normalize=None, allow_none=False):
    spec = Choice(*choices, normalize=normalize)
    return (Optional(spec) if allow_none else spec)(name, value)


def check_epochs(name, value, minimum=1):
    return Epochs(minimum)(name, value)


def check_seed(name, value):
    return Seed()(name, value)


def check_fraction(name, value):
    """A pruning fraction in [0, 1]."""
    return Fraction()(name, value)


def check_budget(name, value):
    """A budget fraction in (0, 1]."""
    return Budget()(name, value)


def check_int_list(name, value, minimum=None, maximum=None, min_length=1):
    return List(Int(minimum, maximum), min_length=min_length)(name, value)


def check_fraction_list(name, value, min_length=1):
    return List(Fraction(), min_length=min_length)(name, value)


def check_choice_list(name, value, choices, min_length=1):
    return List(Choice(*choices), min_length=min_length)(name, value)


def check_callable(name, value):
    return Callable()(name, value)


def check_parameters(values: dict, specs: dict) -> dict:
    """Check ``values[name]`` against ``specs[name]`` for every spec; returns the normalised values."""
    missing = [name for name in specs if name not in values]
    if missing:
        raise NameError(f"parameters {missing} are not defined (is the parameters cell above?)")
    return {name: spec(name, values[name]) for name, spec in specs.items()}


def validated(**specs):
    """Decorator: check the arguments ``specs`` names against their specs on every call, before
    the body runs, and pass the body the normalised values (``Int`` gives an ``int`` for a numpy
    int, ``List`` a list for a tuple, ``Choice`` the canonical name)::

        @validated(epochs=Epochs(), seeds=List(Seed(), unique=True), progress=Bool())
        def sweep(epochs, seeds=(0,), progress=True): ...

    Defaults are checked too, so a spec and its default cannot disagree unnoticed (the first
    call fails). A spec for an argument the function does not take is an error when decorating.
    """

    def decorate(function):
        signature = inspect.signature(function)
        unknown = sorted(set(specs) - set(signature.parameters))
        if unknown:
            raise TypeError(f"@validated names {unknown}, which {function.__qualname__} does not take")

        @functools.wraps(function)
        def checked(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            for name, spec in specs.items():
                bound.arguments[name] = spec(name, bound.arguments[name])
            return function(*bound.args, **bound.kwargs)

        checked.specs = dict(specs)  # what the arguments must be, for documentation and tests
        return checked

    return decorate


def check_known_parameters(names, known, where="the notebook") -> None:
    """Raise ``TypeError`` for the first of ``names`` that is not in ``known``, naming the closest
    known one (a typo would otherwise run on the default)."""
    known = sorted(known)
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise TypeError(f"unknown parameter {name!r} of {where}: {hint}its parameters are {', '.join(known)}")
