import socket

import pytest

from oomforensics.archive import Archive


@pytest.fixture(params=["memory", "file"])
def archive(request, tmp_path) -> Archive:
    """The same contract on both local backends: in memory, and a folder on disk."""
    if request.param == "memory":
        return Archive.from_url("memory://")
    return Archive.from_url(f"file://{tmp_path / 'archive'}")


@pytest.fixture
def unreachable() -> Archive:
    """An S3 archive whose endpoint refuses connections: the store is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # the port is closed again: connecting is refused
    return Archive.from_url(
        "s3://evidence/oomf",
        credentials={"access_key_id": "k", "secret_access_key": "s"},
        options={"endpoint": f"http://127.0.0.1:{port}", "region": "us-east-1"},
    )
