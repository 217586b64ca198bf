import keras
import numpy as np
import pytest

from keras_sr.trainers.schedules import LinearWarmup
from training import fit
from training.config import OptimizerConfig


def test_linear_warmup_rises_then_follows_the_schedule():
    after = keras.optimizers.schedules.PiecewiseConstantDecay([50], [1.0, 0.5])
    schedule = LinearWarmup(after, 10)
    # PiecewiseConstantDecay switches after its boundary: step 50 still has 1.0.
    values = [float(schedule(step)) for step in (0, 5, 10, 50, 51, 80)]
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0, 1.0, 0.5, 0.5])
    clone = LinearWarmup.from_config(schedule.get_config())
    assert float(clone(5)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="warmup_steps"):
        LinearWarmup(1.0, 0)


@pytest.mark.parametrize("config,expected", [
    (OptimizerConfig(learning_rate=1e-3, schedule="cosine", warmup_steps=100),
     {0: 0.0, 50: 5e-4, 100: 1e-3, 550: 5e-4, 1000: 0.0}),
    (OptimizerConfig(learning_rate=1e-3, schedule="cosine"), {0: 1e-3, 500: 5e-4, 1000: 0.0}),
    (OptimizerConfig(learning_rate=1e-3, milestones=(500,), warmup_steps=100),
     {50: 5e-4, 100: 1e-3, 500: 1e-3, 501: 5e-4}),
])
def test_configured_schedules(config, expected):
    schedule = fit.learning_rate_schedule(config, total_steps=1000)
    for step, rate in expected.items():
        assert float(schedule(step)) == pytest.approx(rate, abs=1e-9), step
