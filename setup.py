"""kws_tf: SparkNet keyword spotting, from Keras training to TensorFlow Lite Micro."""

from setuptools import find_packages, setup

# Pinned to the stack checked in ../shared/STACK.md: tf-keras must share TensorFlow's
# minor version, tfmot pins absl-py ~= 1.2, tfds 4.9.10 imports importlib_resources
# without declaring it, and tflite-micro only publishes dated dev builds.
INSTALL_REQUIRES = [
    "tensorflow==2.21.0",
    "tf-keras==2.21.0",
    "tensorboard==2.21.0",
    "tensorflow-model-optimization==0.8.1",
    "tensorflow-datasets==4.9.10",
    "importlib_resources",
    "librosa==0.11.0",
    "absl-py~=1.2",
    "tflite-micro==0.dev20261023182759",
    "ai-edge-litert==2.3.0",
    "numpy",
    "scipy",
    "soundfile",
    "matplotlib",
    "pyserial",
]

setup(
    name="kws_tf",
    version="0.1.0",
    description="SparkNet keyword spotting: Keras training, int8 TFLite export, TFLite Micro app",
    packages=find_packages(include=["kws_tf", "kws_tf.*"]),
    python_requires=">=3.10,<3.13",
    install_requires=INSTALL_REQUIRES,
    # `cluster`: kws_tf.sweep runs sweeps as Ray tasks (local or on a Ray cluster); nothing else needs it.
    extras_require={"dev": ["pytest>=8"], "cluster": ["ray[default]==2.60.0"]},
)
