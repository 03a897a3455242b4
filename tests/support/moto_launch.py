"""Start moto's server with its request recorder made thread-safe.

Run by the moto venv's own python (tests/support/moto.py), so it imports nothing of ours.
moto's server is threaded and its recorder appends each request to one file without a lock;
concurrent uploads (an archive stores a snapshot's files in parallel) interleave the lines of
large requests, and a replay then silently drops both. One lock around each record fixes that.
"""

import sys
import threading

from moto.moto_api._internal.recorder.models import Recorder
from moto.server import main

_lock = threading.Lock()
_record = Recorder._record_request


def _record_serialised(self, request, body=None):  # type: ignore[no-untyped-def]
    with _lock:
        _record(self, request, body)


Recorder._record_request = _record_serialised  # type: ignore[method-assign]

if __name__ == "__main__":
    main(sys.argv[1:])
