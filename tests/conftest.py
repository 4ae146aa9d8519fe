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

    return make_speech_commands_folder(tmp_path_factory.mktemp("sc"), clips_per_class=24, speakers=8)
