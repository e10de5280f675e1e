"""Forecasting invariants under arbitrary data (hypothesis)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.forecasting.evaluate import baseline_forecasts
from rnnlab.forecasting.models import ForecastConfig, Forecaster
from rnnlab.forecasting.series import sine_series

_TRAIN = sine_series(120, seed=3).values
# Fitted once: the properties are about forecasting, not training.
_MODELS = {m: Forecaster(ForecastConfig(model=m, tau=3, hidden=6, epochs=1, context=8)).fit(_TRAIN)
           for m in ("mlp", "gru")}
finite = st.floats(-5, 5, allow_nan=False)


@settings(max_examples=30, deadline=None)
@given(past=st.lists(finite, min_size=8, max_size=20), future=st.lists(finite, min_size=1, max_size=20),
       other=st.lists(finite, min_size=20, max_size=20), steps=st.integers(1, 12),
       model=st.sampled_from(sorted(_MODELS)))
def test_forecast_depends_only_on_the_past(past, future, other, steps, model):
    """Replacing everything after the origin changes no forecast, model or baseline."""
    origin = len(past)
    a = np.array(past + future)
    b = np.array(past + other[:len(future)])
    f = _MODELS[model]
    assert np.array_equal(f.predict(a, steps, origin=origin), f.predict(b, steps, origin=origin))
    paths_a, _ = baseline_forecasts(a, np.array([origin]), steps, train_end=origin, tau=2, season=3)
    paths_b, _ = baseline_forecasts(b, np.array([origin]), steps, train_end=origin, tau=2, season=3)
    for name in paths_a:
        assert np.allclose(paths_a[name], paths_b[name], equal_nan=True), name


@settings(max_examples=30, deadline=None)
@given(values=st.lists(finite, min_size=12, max_size=30), steps=st.integers(2, 10),
       model=st.sampled_from(sorted(_MODELS)))
def test_k_step_path_starts_with_the_one_step_forecast(values, steps, model):
    """A recursive path's first value is the one-step forecast; a batch of origins equals one-by-one."""
    x = np.array(values)
    f = _MODELS[model]
    origins = np.arange(f.config.window, len(x) + 1)
    paths = f.predict_paths(x, origins, steps)
    one = f.predict_paths(x, origins, 1)[:, 0]
    assert np.allclose(paths[:, 0], one, atol=1e-12)
    singles = np.stack([f.predict(x, steps, origin=int(o)) for o in origins])
    assert np.allclose(paths, singles, atol=1e-12)
