"""IMDB sentiment classification: the pipeline spec and the IMDB data source."""
