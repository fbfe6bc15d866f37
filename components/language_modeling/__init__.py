"""Language modeling: texts cut into token streams, next-token models and in-graph generation."""
