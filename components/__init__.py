"""Reusable TFX-style pipeline stages: ingest, preprocess, train, evaluate, export.

Each module exposes one public ``run(config, inputs..., out_dir)`` that reads typed input
artifacts and returns typed output artifacts (see ``artifacts.py``). Components never choose
their own output paths; the pipeline runner does, so runs stay cacheable and traceable.
"""

import os

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) buries our progress output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
