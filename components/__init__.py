"""The bottom layer: TFX-style stages and the helpers they share. Imports neither pipelines/
nor serving/.

A stage module (train, tune, bless, export, ensemble, and each family's ingest, preprocess and
evaluate) exposes ``run(config, inputs..., out_dir)``, which reads typed input artifacts and
returns a typed output artifact (``artifacts.py``); the other modules are helpers (tracking,
errors, recurrent, reporting, versions; a family's model, signatures, ...). Components never
choose their own output paths; the pipeline runner does, so runs stay cacheable and traceable.
Generic code lives here at the top; what serves one kind of problem lives in its family package:
``text_classification``, ``language_modeling``, ``forecasting``.
"""

import os

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) buries our progress output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
