"""The 12 Speech Commands classes: their order and the word -> class mapping.

This order is the one the model's output uses everywhere (training, export, the
generated C++ header and the device); no other module lists the classes.
"""

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
LABELS = KEYWORDS + (SILENCE, UNKNOWN)
NUM_CLASSES = len(LABELS)

# Folder name of the background-noise recordings in the Speech Commands layout.
BACKGROUND_NOISE_DIR = "_background_noise_"


def label_index(word: str) -> int:
    """Class index of a Speech Commands word (any non-keyword word is `_unknown_`)."""
    if word in KEYWORDS:
        return KEYWORDS.index(word)
    if word == SILENCE:
        return LABELS.index(SILENCE)
    return LABELS.index(UNKNOWN)
