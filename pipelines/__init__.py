"""The applications (one folder each, listed in ``registry.py``) and how a run is orchestrated:
the runner, cache, config loading, lineage, comparison and benchmarks."""
