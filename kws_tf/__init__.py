"""kws_tf: SparkNet keyword spotting, from training to TFLite Micro."""

__version__ = "0.1.0"

import os as _os

# TensorFlow's C++ start-up chatter (CUDA probing, CPU features) buries the CLIs'
# progress lines; users can still set the variable themselves.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
