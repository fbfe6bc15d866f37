"""Text classification (IMDB sentiment by default): labelled texts in, a calibrated label out."""
