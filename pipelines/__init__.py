"""Application pipelines (sentiment, ...) wired from the generic components, and their runner."""
