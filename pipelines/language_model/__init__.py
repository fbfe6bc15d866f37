"""Character- and word-level language models: the pipeline spec and the corpora it reads."""
