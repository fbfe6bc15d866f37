"""The models directory, watched: which versions are loaded, loading, failed or gone, and labels.

Like TF Serving's file-system source and manager: every ``poll()`` lists ``<models_dir>/<model>/
<version>/`` (hidden directories such as the exporter's ``.staging-*`` are skipped), applies each
model's version policy (``models.config``'s ``model_version_policy``; by default the latest
version) and loads new aspired versions on background threads. A version starts answering only once
it has loaded, by replacing the reference requests look up, so requests in flight finish on the
servable they hold. As TF Serving's availability-preserving policy, a version that is no longer
aspired (superseded, dropped by the policy, or its directory deleted) keeps serving from memory
until an aspired version is available, and is unloaded at once only when nothing is aspired. A
version that fails to load is reported (``END`` with its error) and tried again only when its
files change. With batching parameters, every version loads with its own batcher, closed when the
version is unloaded.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.versions import list_versions
from serving import servables
from serving.batching import BatchingParameters
from serving.metrics import ServingMetrics
from serving.servables import Servable
from serving.status import from_exception, invalid_argument, not_found
from serving.version_labels import refused_labels

log = logging.getLogger(__name__)
DEFAULT_LABEL = "stable"
"""Without labels in the config, this label names the latest available version."""


@dataclasses.dataclass(frozen=True)
class VersionState:
    state: str
    """``LOADING``, ``AVAILABLE`` or ``END`` (unloaded, or failed: then ``error_code`` says why)."""
    error_code: str = "OK"
    error_message: str = ""
    files: tuple = ()
    """After a failure, the files the load found; the load is retried when they change."""


class ModelStore:
    """The versions of every model under ``models_dir``; thread-safe, polled by :meth:`watch`."""

    def __init__(
        self,
        models_dir: Path,
        config_file: Path | None = None,
        load_threads: int = 2,
        batching: BatchingParameters | None = None,
        metrics: ServingMetrics | None = None,
    ):
        self.models_dir = Path(models_dir)
        self._poller: threading.Thread | None = None
        self.config_file = Path(config_file) if config_file else None
        self.batching = batching
        """Batch concurrent requests with these parameters; None: run each request alone."""
        self.metrics = metrics
        """Where the servables record their runtime latency."""
        self._lock = threading.Lock()
        self._available: dict[str, dict[int, Servable]] = {}
        self._states: dict[str, dict[int, VersionState]] = {}
        self._aspired: dict[str, set[int]] = {}
        self._config: dict[str, model_server_config_pb2.ModelConfig] = {}
        self._config_stamp: int | None = None
        self._loads: dict[tuple[str, int], Future] = {}
        self._executor = ThreadPoolExecutor(load_threads, thread_name_prefix="model-load")
        self._closed = threading.Event()

    def poll(self) -> None:
        """Reconcile with the disk once: start the loads and do the unloads it calls for."""
        self._read_config()
        on_disk = self._scan()
        with self._lock:
            for name in sorted(set(on_disk) | set(self._states)):
                self._reconcile(name, on_disk.get(name, {}))

    def wait_for_loads(self, timeout: float | None = None) -> None:
        """Block until the loads started so far have finished (loaded or failed)."""
        with self._lock:
            pending = list(self._loads.values())
        for load in pending:
            load.result(timeout)

    def watch(self, interval_seconds: float) -> None:
        """Poll every ``interval_seconds`` on a daemon thread until :meth:`close`."""

        def loop():
            while not self._closed.wait(interval_seconds):
                try:
                    self.poll()
                except Exception:  # a bad poll (a file vanishing mid-scan) must not stop the next
                    log.exception("polling %s failed", self.models_dir)

        self._poller = threading.Thread(target=loop, name="model-poll", daemon=True)
        self._poller.start()

    def close(self) -> None:
        """Stop polling and loading (a load under way finishes first), then every servable."""
        self._closed.set()
        if self._poller is not None:
            self._poller.join()
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for versions in self._available.values():
                for servable in versions.values():
                    servable.close()

    def servable(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request names: latest available, a version, or a label's version."""
        with self._lock:
            available = self._available.get(name, {})
            if label is not None:
                version = self._label_version(name, label)
            if version is None:
                if not available:
                    raise not_found(f"Servable not found for request: Latest({name})")
                return available[max(available)]
            if version not in available:
                raise not_found(f"Servable not found for request: Specific({name}, {version})")
            return available[version]

    def states(
        self, name: str, version: int | None = None, label: str | None = None
    ) -> list[tuple[int, VersionState]]:
        """``(version, state)`` newest first: all the versions the store has seen, or one."""
        with self._lock:
            states = self._states.get(name, {})
            if label is not None:
                version = self._label_version(name, label)
            if version is not None:
                if version not in states:
                    raise not_found(f"Could not find version {version} of model {name}")
                return [(version, states[version])]
            if not states:
                raise not_found(f"Could not find any versions of model {name}")
            return sorted(states.items(), reverse=True)

    def _label_version(self, name: str, label: str) -> int:
        config = self._config.get(name)
        labels = dict(config.version_labels) if config and config.version_labels else {}
        if not labels and self._available.get(name):
            labels = {DEFAULT_LABEL: max(self._available[name])}
        if label not in labels:
            raise invalid_argument(f"Unrecognized servable version label: {label}")
        return labels[label]

    def _reconcile(self, name: str, on_disk: dict[int, Path]) -> None:
        """Start loads of new aspired versions; unload what the disk or the policy dropped."""
        aspired = _aspired_versions(self._config.get(name), sorted(on_disk))
        self._aspired[name] = aspired
        states = self._states.setdefault(name, {})
        for version in sorted(aspired):
            state = states.get(version)
            retry = state and state.state == "END" and state.files != _files(on_disk[version])
            if state is None or retry:
                states[version] = VersionState("LOADING")
                load = self._executor.submit(self._load, name, version, on_disk[version])
                self._loads[(name, version)] = load
        self._unload_superseded(name)

    def _unload_superseded(self, name: str) -> None:
        """Availability first: versions no longer aspired go once an aspired version answers (or
        when none is aspired any more: the model's versions are all gone)."""
        available, aspired = self._available.get(name, {}), self._aspired.get(name, set())
        if aspired and not any(version in available for version in aspired):
            return
        for version in list(available):
            if version not in aspired:
                self._unload(name, version, "no longer aspired (superseded or deleted)")

    def _unload(self, name: str, version: int, reason: str) -> None:
        # Requests holding the servable keep it alive until they finish; new ones no longer see it.
        self._available[name].pop(version).close()
        self._states[name][version] = VersionState("END")
        log.info("unloaded %s version %d: %s", name, version, reason)

    def _load(self, name: str, version: int, path: Path) -> None:
        started = time.monotonic()
        # Listed before loading: files still being copied then differ from it, and force a retry.
        files = _files(path)
        try:
            servable = servables.load(name, version, path, self.batching, self.metrics)
        except Exception as exception:  # any failure is the version's status, never the server's
            error = from_exception(exception)
            log.error("loading %s version %d from %s failed: %s", name, version, path, error)
            with self._lock:
                state = VersionState("END", error.code, error.message, files)
                self._states[name][version] = state
                self._loads.pop((name, version), None)
            return
        with self._lock:
            self._available.setdefault(name, {})[version] = servable
            self._states[name][version] = VersionState("AVAILABLE")
            self._loads.pop((name, version), None)
            self._unload_superseded(name)
        log.info("%s version %d available (%.1f s)", name, version, time.monotonic() - started)

    def _scan(self) -> dict[str, dict[int, Path]]:
        """Model name -> version -> directory, hidden entries (``.staging-*``) skipped."""
        models: dict[str, dict[int, Path]] = {}
        for model in _subdirectories(self.models_dir):
            models[model.name] = {version: model / str(version) for version in list_versions(model)}
        return models

    def _read_config(self) -> None:
        """(Re)read ``models.config`` when it changed; a bad file keeps the previous config."""
        if self.config_file is None:
            return
        try:
            stamp = self.config_file.stat().st_mtime_ns
        except FileNotFoundError:
            if self._config:
                log.info("%s removed: default policy and labels for every model", self.config_file)
            self._config, self._config_stamp = {}, None
            return
        if stamp == self._config_stamp:
            return
        self._config_stamp = stamp
        try:
            config = text_format.Parse(
                self.config_file.read_text(), model_server_config_pb2.ModelServerConfig()
            )
        except (OSError, text_format.ParseError) as error:
            log.error("%s: %s; keeping the previous model config", self.config_file, error)
            return
        entries = {entry.name: entry for entry in config.model_config_list.config}
        with self._lock:
            refused = [
                reason
                for name, entry in entries.items()
                for reason in refused_labels(
                    name,
                    dict(entry.version_labels),
                    dict(self._config[name].version_labels) if name in self._config else {},
                    set(self._available.get(name, {})),
                ).values()
            ]
        if refused:  # as TF Serving: the whole reload fails, the running config stays
            log.error("%s refused: %s", self.config_file, "; ".join(refused))
            return
        self._config = entries
        log.info("model config %s: %s", self.config_file, sorted(self._config))


def _aspired_versions(config, versions: list[int]) -> set[int]:
    """The versions ``config``'s policy serves; TF Serving's default is the latest one."""
    policy = config.model_version_policy if config is not None else None
    choice = policy.WhichOneof("policy_choice") if policy is not None else None
    if choice == "all":
        return set(versions)
    if choice == "specific":
        return set(versions) & set(policy.specific.versions)
    count = policy.latest.num_versions if choice == "latest" else 0
    return set(versions[-max(count, 1) :])


def _subdirectories(path: Path) -> list[Path]:
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(".")]


def _files(path: Path) -> tuple:
    """Every file under ``path`` with its size and modification time."""
    listing = []
    for root, _, names in os.walk(path):
        for name in names:
            try:
                stat = os.stat(os.path.join(root, name))
            except OSError:
                continue
            listing.append((os.path.join(root, name), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(listing))
