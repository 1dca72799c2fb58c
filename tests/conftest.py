"""Suite-wide settings: the tests never reach a model hub (everything they load ships in packages),
so hub access is switched off to fail fast instead of waiting on a closed network."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
