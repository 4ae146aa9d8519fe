"""SincConv and the sinc-convolution KWS model: size, band-pass filters, config, deploy form, int8 on TFLM."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from kws_tf import deploy_graph, tflite_tools, tflm
from kws_tf import model as accounting
from kws_tf.models import sincnet
from kws_tf.models.sinc_conv import SincConv

FS = 16000


def test_parameter_and_mac_counts_match_the_hand_computation():
    net = sincnet.build_sincnet(channels=162)
    c = 162
    sinc = 40 * 2  # low and band per filter
    sinc_bn = 40 * 2  # gamma, beta
    b1 = 40 * 25 + 40 * c + 2 * c  # depthwise 1x25 on 40 channels, 1x1 40 -> C (1 group), BN
    b2 = c * 9 + 2 * (c // 2) ** 2 + 2 * c  # depthwise 1x9, 1x1 in 2 groups of 81 -> 81, BN
    b3 = c * 9 + 3 * (c // 3) ** 2 + 2 * c  # 3 groups of 54 -> 54
    dense = c * 12 + 12
    assert accounting.count_params(net) == sinc + sinc_bn + b1 + 2 * b2 + 2 * b3 + dense == 60_788

    # The sinc layer's MACs are counted: 2000 outputs (16000 / stride 8) x 40 filters x 101 taps.
    rows = {r["name"]: r for r in accounting.layer_table(net)}
    assert rows["sinc"]["macs"] == 2000 * 40 * 101
    assert rows["sinc"]["output"] == (1, 2000, 40)
    assert accounting.count_macs(net) > 2000 * 40 * 101


def _gain(kernel_taps: np.ndarray, hz: np.ndarray, n_fft: int = 1 << 15) -> np.ndarray:
    spectrum = np.abs(np.fft.rfft(kernel_taps, n_fft))
    return np.interp(hz, np.fft.rfftfreq(n_fft, 1.0 / FS), spectrum)


def test_sinc_filters_are_band_pass_between_the_set_cutoffs():
    layer = SincConv(4, 101, 8, sample_rate=FS, min_low_hz=50.0, min_band_hz=50.0)
    layer.build((None, 1, 16000, 1))
    low = np.array([300.0, 1000.0, 2500.0, 4500.0])
    high = np.array([2300.0, 3500.0, 5500.0, 7000.0])
    layer.set_cutoffs_hz(low, high)
    got_low, got_high = layer.cutoffs_hz()
    np.testing.assert_allclose(got_low, low, rtol=1e-5)
    np.testing.assert_allclose(got_high, high, rtol=1e-5)

    kernel = layer.kernel().numpy()
    assert kernel.shape == (1, 101, 1, 4)
    # A Hamming-windowed sinc difference: transition ~3.3 fs / K ~ 520 Hz wide around each
    # cut-off, where the amplitude is 1/2 (-6 dB); side lobes below -50 dB.
    for f in range(4):
        taps = kernel[0, :, 0, f]
        np.testing.assert_allclose(taps, taps[::-1], atol=1e-7)  # symmetric: linear phase
        mid = (low[f] + high[f]) / 2
        assert _gain(taps, np.array([mid]))[0] == pytest.approx(1.0, abs=0.02)
        edges = _gain(taps, np.array([low[f], high[f]]))
        np.testing.assert_allclose(edges, 0.5, atol=0.08)
        outside = np.concatenate([np.linspace(0, low[f] - 700, 20), np.linspace(high[f] + 700, FS / 2, 20)])
        outside = outside[(outside >= 0) & (outside <= FS / 2)]
        assert _gain(taps, outside).max() < 0.02, f
        inside = np.linspace(low[f] + 700, high[f] - 700, 20)
        np.testing.assert_allclose(_gain(taps, inside), 1.0, atol=0.03)

    with pytest.raises(ValueError, match="cut-offs"):
        layer.set_cutoffs_hz(low, low + 10.0)  # narrower than min_band_hz


def test_initial_cutoffs_are_mel_spaced_and_the_cutoffs_learn():
    layer = SincConv(40, 101, 8)
    x = tf.random.stateless_normal((2, 1, 4000, 1), seed=(1, 2)) * 0.1
    with tf.GradientTape() as tape:
        y = layer(x)
        loss = tf.reduce_mean(tf.square(y))
    low, high = layer.cutoffs_hz()
    assert np.all(np.diff(low) > 0) and np.all(high > low)
    assert low[0] == pytest.approx(80.0, abs=1.0)  # min_low_hz 50 + SincNet's 30 Hz initial edge
    # mel spacing: the bands widen with frequency
    assert (high - low)[-1] > 5 * (high - low)[0]
    grads = tape.gradient(loss, [layer.low, layer.band])
    for g in grads:
        assert np.all(np.isfinite(g.numpy())) and np.abs(g.numpy()).max() > 0


def test_get_config_round_trip_and_model_reload():
    layer = SincConv(12, 51, 4, sample_rate=FS, min_low_hz=20.0, min_band_hz=80.0, padding="valid", name="s")
    cfg = layer.get_config()
    again = SincConv.from_config(cfg)
    assert again.get_config() == cfg

    net = sincnet.build_sincnet(channels=6, num_samples=1600)
    sinc = net.get_layer("sinc")
    sinc.set_cutoffs_hz(np.linspace(100, 5000, 40), np.linspace(600, 7900, 40))
    clone = keras.models.model_from_json(net.to_json(), custom_objects=sincnet.custom_objects())
    clone.set_weights(net.get_weights())
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 1, 1600, 1)).astype(np.float32)
    np.testing.assert_allclose(clone.predict(x, verbose=0), net.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(clone.get_layer("sinc").cutoffs_hz()[1], sinc.cutoffs_hz()[1], rtol=1e-6)


def test_deployed_is_an_ordinary_conv_with_the_same_output():
    rng = np.random.default_rng(1)
    for padding in ("same", "valid"):
        layer = SincConv(16, 101, 8, padding=padding)
        inp = keras.Input((1, 3000, 1))
        trained = keras.Model(inp, layer(inp))
        layer.set_cutoffs_hz(np.sort(rng.uniform(60, 4000, 16)), np.sort(rng.uniform(4200, 7900, 16)))
        dep_in = keras.Input((1, 3000, 1))
        deployed = keras.Model(dep_in, layer.deployed(dep_in))
        assert [type(x).__name__ for x in deployed.layers[1:]] == ["Conv2D"]
        x = rng.uniform(-1, 1, (3, 1, 3000, 1)).astype(np.float32)
        a, b = trained.predict(x, verbose=0), deployed.predict(x, verbose=0)
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, atol=1e-5)


def _randomise_batchnorm(net, rng):
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 2.0, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n),
                               rng.uniform(0.5, 2.0, n)])


def test_deployed_model_is_full_int8_and_runs_in_tflm_with_micro_ops_only():
    rng = np.random.default_rng(2)
    net = sincnet.build_sincnet()
    _randomise_batchnorm(net, rng)  # so that folding the BNs changes the weights
    dep = deploy_graph.deploy_model(net)
    assert "SincConv" not in {type(layer).__name__ for layer in dep.layers}  # now a plain Conv2D
    x = (rng.standard_normal((6, 1, 16000, 1)) * 0.2).clip(-1, 0.99).astype(np.float32)
    float_out = dep.predict(x, verbose=0)
    np.testing.assert_allclose(float_out, net.predict(x, verbose=0), atol=1e-4)

    fb = tflite_tools.convert_int8(dep, x)
    info = tflite_tools.inspect_model(fb)
    assert tflite_tools.int8_problems(info) == []
    assert tflite_tools.micro_problems(info) == []
    assert set(info.op_set) <= set(tflite_tools.MICRO_OPS)
    # Every BN folded (the block BNs by deploy_graph, the filterbank's by the converter) and every
    # ReLU fused: no elementwise op runs over a whole map.
    assert not {"MUL", "ADD", "RELU", "LOG", "ABS"} & set(info.ops)
    assert info.input.shape == (1, 1, 16000, 1) and info.input.dtype == "INT8"

    scale, zero = tflite_tools.quant_params(info.input)
    xq = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
    got = tflm.run_tflm(fb, xq)
    np.testing.assert_array_equal(got, tflite_tools.run_tflite(fb, xq))  # TFLM == TFLite reference kernels
    out_scale, out_zero = tflite_tools.quant_params(info.output)
    dequant = (got.astype(np.float32) - out_zero) * out_scale
    assert np.corrcoef(dequant.ravel(), float_out.ravel())[0, 1] > 0.95
    arena = tflm.min_arena_bytes(fb)
    print(f"sincnet C=162 int8: {len(fb)} bytes, host arena {arena} bytes, ops {info.op_set}")
    assert arena > 16_000 + 2000 * 40  # the input and the filterbank's output are live together


def test_bad_widths_are_refused():
    with pytest.raises(ValueError, match="channels"):
        sincnet.build_sincnet(channels=2)
    with pytest.raises(ValueError, match="odd"):
        SincConv(4, 100)
