"""The chief of a distributed search (components/tune.py): it serves KerasTuner's oracle over gRPC
until the last worker has reported, and returns then.

KerasTuner's own chief (``oracle_chief.start_server``, keras-tuner==1.4.8 as requirements.lock
pins it) looks once a second for a worker told to stop, then every 20 s for the end of the search
(no trial running, every worker told to stop): on short trials that sleep is most of the search.
Here the request that ends the search wakes the chief. The test of this module checks that the
installed KerasTuner still has the pieces used here (its servicer, ``exit_chief`` and protos).
"""

from __future__ import annotations

import os
import threading
from concurrent import futures

import grpc
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief

# How long the last worker's answer ("stop") may take to reach it once the search is over.
STOP_GRACE_S = 10.0


class _Servicer(oracle_chief.OracleServicer):
    """KerasTuner's servicer; after each request that can end the search (a trial handed out or
    refused, a trial ended), it checks KerasTuner's condition and wakes the chief if it holds."""

    def __init__(self, oracle, search_over: threading.Event):
        super().__init__(oracle)
        self.search_over = search_over

    def CreateTrial(self, request, context):
        response = super().CreateTrial(request, context)
        self._check_over()
        return response

    def EndTrial(self, request, context):
        response = super().EndTrial(request, context)
        self._check_over()
        return response

    def _check_over(self) -> None:
        if self.stop_triggered and oracle_chief.exit_chief(self.oracle):
            self.search_over.set()


def start(oracle, address: str) -> tuple[grpc.Server, threading.Event]:
    """Serve ``oracle`` on ``address`` (host:port); the event is set once the search is over."""
    search_over = threading.Event()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))  # as KerasTuner serves it
    protos.get_service_grpc().add_OracleServicer_to_server(_Servicer(oracle, search_over), server)
    server.add_insecure_port(address)
    server.start()
    return server, search_over


def serve(oracle) -> None:
    """Serve ``oracle`` at ``KERASTUNER_ORACLE_IP``/``_PORT`` until the search is over."""
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    server, search_over = start(oracle, address)
    search_over.wait()
    server.stop(grace=STOP_GRACE_S).wait()
