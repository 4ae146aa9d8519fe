"""The relaxed-Bernoulli gate: deterministic inference, noise σ, the loss formula, save/load."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from kws_tf.models import sparknet
from kws_tf.gates import RelaxedBernoulliGate


def test_inference_is_clip_of_mu_plus_half_and_adds_no_loss():
    gate = RelaxedBernoulliGate(sigma=0.5, lam=1.0)
    mu = tf.constant(np.linspace(-1, 1, 201, dtype=np.float32).reshape(1, 1, 201, 1))
    g1 = gate(mu, training=False).numpy()
    g2 = gate(mu, training=False).numpy()
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_allclose(g1, np.clip(mu.numpy() + 0.5, 0, 1), atol=0)
    assert gate.losses == []


@pytest.mark.parametrize("sigma", [0.5, 0.2])
def test_training_noise_has_configured_sigma(sigma):
    gate = RelaxedBernoulliGate(sigma=sigma, lam=1.0, seed=3)
    # With mu = 0, g = clip(0.5 + n, 0, 1): values strictly inside (0, 1) are exactly
    # those with |n| < 0.5, whose probability erf(0.5 / (sigma*sqrt 2)) pins sigma.
    mu = tf.zeros((64, 1, 101, 32))
    g = gate(mu, training=True).numpy().ravel()
    inside = np.mean((g > 0) & (g < 1))
    s_hat = 0.5 / (math.sqrt(2) * _erfinv(inside))
    assert s_hat == pytest.approx(sigma, rel=0.03)
    n = g[(g > 0) & (g < 1)] - 0.5
    assert abs(n.mean()) < 0.01  # zero-mean noise


def _erfinv(y):
    # Newton iterations on erf; good to 1e-10 for |y| < 0.999.
    x = 0.0
    for _ in range(50):
        x -= (math.erf(x) - y) / (2 / math.sqrt(math.pi) * math.exp(-x * x))
    return x


def test_training_noise_differs_per_step_and_is_reproducible():
    mu = tf.zeros((2, 1, 10, 4))
    a = RelaxedBernoulliGate(seed=1)
    b = RelaxedBernoulliGate(seed=1)
    a1, a2 = a(mu, training=True).numpy(), a(mu, training=True).numpy()
    b1 = b(mu, training=True).numpy()
    assert not np.array_equal(a1, a2)
    np.testing.assert_array_equal(a1, b1)


def test_sparsity_loss_equals_formula():
    lam, sigma = 0.7, 0.5
    gate = RelaxedBernoulliGate(sigma=sigma, lam=lam)
    mu_np = np.random.default_rng(0).uniform(-1, 1, (3, 1, 20, 32)).astype(np.float32)
    gate(tf.constant(mu_np), training=True)
    assert len(gate.losses) == 1
    phi = np.vectorize(lambda m: 0.5 - 0.5 * math.erf((-0.5 - m) / (sigma * math.sqrt(2))))(mu_np.astype(np.float64))
    assert float(gate.losses[0]) == pytest.approx(lam * phi.mean(), rel=1e-5)


def test_save_and_load_give_identical_outputs(tmp_path):
    net = sparknet.build_sparknet(4, sigma=0.3, lam=0.5, seed=7)
    x = np.random.default_rng(1).normal(size=(3, 1, 101, 32)).astype(np.float32)
    net(x, training=True)  # move BN stats and the noise counter away from their initial values
    path = tmp_path / "m.keras"
    net.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(net.predict(x, verbose=0), loaded.predict(x, verbose=0))
    cfg = loaded.get_layer("gate").get_config()
    assert (cfg["sigma"], cfg["lam"], cfg["seed"]) == (0.3, 0.5, 7)
    assert int(loaded.get_layer("gate").noise_step.numpy()) == int(net.get_layer("gate").noise_step.numpy())


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        RelaxedBernoulliGate(sigma=0)
    with pytest.raises(ValueError):
        RelaxedBernoulliGate(lam=-1)
