"""kws_tf: SparkNet keyword spotting, from training to TFLite Micro."""

__version__ = "0.1.0"
