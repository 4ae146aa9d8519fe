"""BC-ResNet as published (kws_tf/models/bcresnet.py): the reference code's parameter counts,
SubSpectral Norm (training, inference, serialisation, exact folding into plain layers), the
int8 graph in the real TFLM interpreter, the warm-up + cosine schedule and the configs."""

import math

import numpy as np
import pytest

from kws_tf import config as config_lib


def reference_params(c: int, classes: int = 12) -> int:
    """Trainable parameters of the reference `BCResNets(c)`, group by group (see the module doc)."""
    widths = [2 * c, c, int(c * 1.5), 2 * c, int(c * 2.5), 4 * c]
    stem = 5 * 5 * 1 * widths[0] + 2 * widths[0]  # 5x5 conv (no bias) + BN

    def block(cin, cout):
        transition = cin * cout + 2 * cout if cin != cout else 0  # 1x1 conv + BN
        f2 = 3 * cout + 2 * 5 * cout  # frequency dw conv + SSN (gamma, beta per channel and sub-band)
        f1 = 3 * cout + 2 * cout + cout * cout  # temporal dw conv + BN + 1x1 conv
        return transition + f2 + f1

    body, cin = 0, widths[0]
    for stage, n in enumerate((2, 2, 4, 4)):
        for _ in range(n):
            body += block(cin, widths[stage + 1])
            cin = widths[stage + 1]
    c4, head_c = widths[4], widths[5]
    head = 5 * 5 * c4 + c4 * head_c + 2 * head_c + head_c * classes + classes  # dw 5x5, 1x1, BN, classifier
    return stem + body + head


def _randomise_norms(net, seed=0):
    """Non-trivial affine and moving statistics in every BN and SSN layer."""
    import tf_keras as keras

    from kws_tf.models.subspectral_norm import SubSpectralNorm

    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if isinstance(layer, (keras.layers.BatchNormalization, SubSpectralNorm)):
            g, b, m, v = (w.shape for w in layer.get_weights())
            layer.set_weights([rng.uniform(0.5, 1.5, g), rng.normal(0, 0.3, b), rng.normal(0, 0.3, m),
                               rng.uniform(0.3, 2.0, v)])


@pytest.mark.parametrize("channels,expected", [(8, 9_232), (5, 4_585)])
def test_parameter_counts_are_the_reference_codes(channels, expected):
    from kws_tf import model as model_lib, models

    assert reference_params(channels) == expected
    net = models.build_model("bcresnet", channels)
    assert model_lib.count_params(net) == expected
    assert net.input.shape[1:] == (1, 101, 40) and net.output.shape[1:] == (12,)
    # the frequency axis 40 -> 20 -> 10 -> 5, and the head's 5x5 kernel leaves one bin for all 101 frames
    freqs = {layer.name: layer.output.shape[2] for layer in net.layers if layer.name.endswith("_freq_ssn")}
    assert [freqs[f"s{s}b1_freq_ssn"] for s in (1, 2, 3, 4)] == [20, 10, 5, 5]
    head = net.get_layer("head_dw")
    assert tuple(head.kernel_size) == (5, 5) and head.output.shape[1:3] == (101, 1)


def test_builder_refuses_a_frequency_axis_ssn_cannot_split():
    from kws_tf.models import bcresnet

    with pytest.raises(ValueError, match=r"divisible by 5 .* 32 input bins give 16, 8, 4"):
        bcresnet.build_bcresnet(8, num_coeffs=32)
    net = bcresnet.build_bcresnet(8, num_coeffs=32, norm="bn")  # the former variant: no constraint
    assert not [layer for layer in net.layers if "ssn" in layer.name]
    with pytest.raises(ValueError, match="norm must be one of"):
        bcresnet.build_bcresnet(8, norm="layer")


def _ssn_numpy(x, sub_bands, gamma, beta, mean, var, eps=1e-5):
    """Per-(sub-band, channel) batch norm of NHWC `x` with stats `[S, C]`, bin by bin."""
    out = np.empty_like(x, dtype=np.float64)
    per = x.shape[2] // sub_bands
    for s in range(sub_bands):
        sl = slice(s * per, (s + 1) * per)
        out[:, :, sl, :] = (x[:, :, sl, :] - mean[s]) / np.sqrt(var[s] + eps) * gamma[s] + beta[s]
    return out


def test_subspectral_norm_inference_is_per_band_batchnorm():
    from kws_tf.models.subspectral_norm import SubSpectralNorm

    rng = np.random.default_rng(1)
    layer = SubSpectralNorm(5)
    x = rng.normal(size=(3, 7, 10, 4)).astype(np.float32)
    layer.build(x.shape)
    g, b, m = rng.uniform(0.5, 2, (5, 4)), rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    v = rng.uniform(0.2, 3, (5, 4))
    layer.set_weights([g, b, m, v])
    np.testing.assert_allclose(layer(x, training=False).numpy(), _ssn_numpy(x, 5, g, b, m, v), rtol=1e-5, atol=1e-5)
    assert len(layer.trainable_weights) == 2 and int(sum(w.numpy().size for w in layer.trainable_weights)) == 40


def test_subspectral_norm_trains_on_per_band_batch_statistics():
    from kws_tf.models.subspectral_norm import SubSpectralNorm

    rng = np.random.default_rng(2)
    # every (sub-band, channel) its own offset and spread: one BN over all bins could not whiten them
    offsets, spreads = rng.normal(0, 3, (1, 1, 5, 1, 3)), rng.uniform(0.5, 4, (1, 1, 5, 1, 3))
    x = (rng.normal(size=(4, 6, 5, 2, 3)) * spreads + offsets).reshape(4, 6, 10, 3).astype(np.float32)
    layer = SubSpectralNorm(5, momentum=0.9)
    y = layer(x, training=True).numpy()
    bands = x.astype(np.float64).reshape(4, 6, 5, 2, 3)
    mean, var = bands.mean(axis=(0, 1, 3)), bands.var(axis=(0, 1, 3))
    np.testing.assert_allclose(y, _ssn_numpy(x, 5, np.ones((5, 3)), np.zeros((5, 3)), mean, var), atol=1e-4)
    yb = y.reshape(4, 6, 5, 2, 3)
    np.testing.assert_allclose(yb.mean(axis=(0, 1, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(yb.std(axis=(0, 1, 3)), 1.0, atol=1e-3)
    n = 4 * 6 * 2  # the running variance is unbiased, as PyTorch's BatchNorm keeps it
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)
    frozen_before = layer.moving_mean.numpy().copy()
    layer(x, training=False)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), frozen_before)


def test_subspectral_norm_config_round_trip_and_shape_errors():
    import tf_keras as keras

    from kws_tf.models.subspectral_norm import SubSpectralNorm

    layer = SubSpectralNorm(4, momentum=0.8, epsilon=1e-3, gamma_regularizer=keras.regularizers.L2(0.01), name="ssn")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(clone, SubSpectralNorm) and clone.get_config() == layer.get_config()
    assert (clone.sub_bands, clone.momentum, clone.epsilon) == (4, 0.8, 1e-3)
    assert clone.get_config()["gamma_regularizer"]["config"]["l2"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match=r"frequency axis \(10 bins\) does not divide into 4 sub-bands"):
        SubSpectralNorm(4)(np.zeros((1, 3, 10, 2), np.float32))


def test_deployed_bcresnet_computes_the_trained_function_and_reloads(tmp_path):
    """SSN and the time-padded head fold exactly into plain layers; model.keras reloads."""
    import tf_keras as keras

    from kws_tf import models
    from kws_tf.deploy_graph import deploy_model
    from kws_tf.models.subspectral_norm import SubSpectralNorm

    net = models.build_model("bcresnet", 5)
    _randomise_norms(net)
    x = np.random.default_rng(3).standard_normal((4, 1, 101, 40)).astype(np.float32)
    deployed = deploy_model(net)
    kinds = {type(layer).__name__ for layer in deployed.layers}
    assert not kinds & {"SubSpectralNorm", "TimePaddedDepthwiseConv2D", "BatchNormalization"}, kinds
    want = net(x, training=False).numpy()
    assert np.abs(want).max() > 0.1  # a non-trivial function
    np.testing.assert_allclose(deployed(x).numpy(), want, atol=1e-5, rtol=1e-5)

    path = tmp_path / "model.keras"
    net.save(path)
    back = keras.models.load_model(path, custom_objects=models.custom_objects())
    assert isinstance(back.get_layer("s1b1_freq_ssn"), SubSpectralNorm)
    np.testing.assert_array_equal(back(x, training=False).numpy(), want)


def test_int8_bcresnet_runs_in_tflm():
    from kws_tf import models, tflite_tools, tflm
    from kws_tf.deploy_graph import deploy_model

    net = models.build_model("bcresnet", 5)
    _randomise_norms(net, seed=4)
    rep = np.random.default_rng(5).standard_normal((8, 1, 101, 40)).astype(np.float32)
    deployed = deploy_model(net)
    data = tflite_tools.convert_int8(deployed, rep)
    info = tflite_tools.inspect_model(data)
    print(f"\nBC-ResNet-0.625 int8: {len(data):,} bytes, ops {sorted(info.op_set)}")
    assert tflite_tools.int8_problems(info) == []
    assert tflite_tools.micro_problems(info) == []
    assert set(info.op_set) <= set(tflite_tools.MICRO_OPS) and "PAD" not in info.op_set
    scale, zp = tflite_tools.quant_params(info.tensors[info.inputs[0]])
    xq = np.clip(np.round(rep / scale + zp), -128, 127).astype(np.int8)
    out = tflm.run_tflm(data, xq)
    assert out.dtype == np.int8 and out.shape == (8, 12)
    np.testing.assert_array_equal(out, tflite_tools.run_tflite(data, xq))
    out_scale, out_zp = tflite_tools.quant_params(info.tensors[info.outputs[0]])
    logits = deployed(rep).numpy()
    err = np.abs((out.astype(np.float32) - out_zp) * out_scale - logits).max()
    assert err < 0.1 * np.abs(logits).max(), err


def test_warmup_cosine_is_the_reference_schedule():
    from kws_tf import schedules

    peak, steps_per_epoch, epochs, warm_epochs = 0.1, 7, 20, 5
    total, warm = steps_per_epoch * epochs, steps_per_epoch * warm_epochs
    sched = schedules.from_config({"name": "warmup_cosine", "warmup_epochs": warm_epochs, "min_lr": 0.0},
                                  peak, total, steps_per_epoch)
    assert isinstance(sched, schedules.WarmupCosine) and sched.warmup_steps == warm

    def reference(i):  # main.py of the authors' code, 1-based iteration i
        if i < warm:
            return peak * i / warm
        return 0.5 * peak * (1 + math.cos(math.pi * (i - warm) / (total - warm)))

    got = [float(sched(step)) for step in range(total)]
    np.testing.assert_allclose(got, [reference(step + 1) for step in range(total)], rtol=1e-5, atol=1e-7)
    assert max(got) == pytest.approx(peak) and got[-1] == pytest.approx(0.0, abs=1e-7)
    assert schedules.WarmupCosine(**sched.get_config()).get_config() == sched.get_config()


def test_schedule_keys_are_validated_per_schedule():
    cfg = config_lib.load_config(channels=8, model="bcresnet")
    bad = config_lib.with_overrides(cfg, {"schedule.power": 2.0})
    with pytest.raises(config_lib.ConfigError, match="schedule.power does not apply to schedule 'warmup_cosine'"):
        config_lib.validate(bad, "test")
    del cfg["schedule"]["warmup_epochs"]
    with pytest.raises(config_lib.ConfigError, match="missing key schedule.warmup_epochs"):
        config_lib.validate(cfg, "test")
    poly = config_lib.load_config(channels=32, model="sparknet")
    assert poly["schedule"]["name"] == "poly_hold_decay"
    with pytest.raises(config_lib.ConfigError, match="missing key schedule.hold_fraction"):
        config_lib.validate({**poly, "schedule": {"name": "poly_hold_decay", "warmup_fraction": 0.1, "power": 2.0,
                                                  "min_lr": 0.0}}, "test")


# tau -> the reference's frequency_masking_para (SpecAugment only for tau >= 1.5)
SPEC_FREQ_PARA = {0.625: None, 1: None, 1.5: 1, 2: 3, 3: 5, 6: 7, 8: 7}


@pytest.mark.parametrize("tau", sorted(SPEC_FREQ_PARA))
def test_shipped_configs_are_the_papers_recipe(tau):
    channels = int(tau * 8)
    cfg = config_lib.load_config(channels=channels, model="bcresnet")
    assert (cfg["model"], cfg["channels"], cfg["epochs"], cfg["batch_size"]) == ("bcresnet", channels, 200, 100)
    assert cfg["optimizer"] == {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.001}
    assert cfg["schedule"] == {"name": "warmup_cosine", "warmup_epochs": 5, "min_lr": 0.0}
    aug, para = cfg["augment"], SPEC_FREQ_PARA[tau]
    if para is None:
        assert aug["spec_prob"] == 0.0
    else:
        assert (aug["spec_prob"], aug["spec_time_masks"], aug["spec_time_mask_frames"]) == (1.0, 2, 19)
        assert (aug["spec_freq_masks"], aug["spec_freq_mask_coeffs"]) == (2, para - 1)
