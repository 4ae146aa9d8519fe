import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def real_data():
    """Path of ../shared/data, from KWS_REAL_DATA; skips the test when unset."""
    path = os.environ.get("KWS_REAL_DATA")
    if not path:
        pytest.skip("KWS_REAL_DATA is not set (point it at the shared real-audio folder to run this test)")
    if not os.path.isdir(path):
        pytest.skip(f"KWS_REAL_DATA={path} is not a folder")
    return pathlib.Path(path)


@pytest.fixture(scope="session")
def synth_folder(tmp_path_factory):
    from synth import make_speech_commands_folder

    return make_speech_commands_folder(tmp_path_factory.mktemp("sc"), clips_per_class=24, speakers=12)


def quick_run_config(data_dir, channels: int = 8, epochs: int = 15, batch_size: int = 16, seed: int = 0, **over):
    """A resolved run configuration for short test runs on a generated folder."""
    from kws_tf import config as config_lib

    cfg = config_lib.load_config(channels=channels)
    cfg.update(epochs=epochs, batch_size=batch_size, seed=seed)
    cfg["data"] = {"kind": "folder", "path": str(data_dir), "validation_percent": 10.0, "test_percent": 10.0,
                   "max_per_class": None, "noise_dir": None}
    for k, v in over.items():
        cfg = config_lib.with_overrides(cfg, {k: v})
    return cfg


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory, synth_folder):
    """A small SparkNet (C=8) trained on the generated folder; shared by export/evaluate tests."""
    from kws_tf.train import run_training

    model_dir = tmp_path_factory.mktemp("trained") / "c8"
    run_training(quick_run_config(synth_folder), model_dir, verbose="quiet", log=lambda m: None)
    return model_dir
