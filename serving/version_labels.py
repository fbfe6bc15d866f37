"""TF Serving's rule for version labels in a reloaded ``models.config``, as one function.

On every reload TF Serving checks the new labels before it applies the new version policy
(``ServerCore::UpdateModelVersionLabelMap`` in ``server_core.cc``): a label may point at a version
that is loaded and available; with ``--allow_version_labels_for_unavailable_models`` also at one
that is not, but only if the label is new to the model. Moving an existing label onto a version
that is not loaded yet fails the whole reload, on every poll, so that version never loads. The
deployment writer keeps its configs inside this rule; the local server enforces it on reload.
"""

from __future__ import annotations

from collections.abc import Mapping


def refused_labels(
    name: str,
    labels: Mapping[str, int],
    current_labels: Mapping[str, int],
    available: set[int],
    allow_unavailable: bool = True,
) -> dict[str, str]:
    """Label -> TF Serving's error, for each of ``labels`` (label -> version) that a reload would
    refuse given the labels the model has now and the versions available; {} when accepted."""
    return {
        label: f"Request to assign label to version {version} of model {name}, which is not "
        f"currently available for inference (label {label!r})"
        for label, version in sorted(labels.items())
        if version not in available and not (allow_unavailable and label not in current_labels)
    }
