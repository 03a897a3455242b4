"""A real Kubernetes API server for custom resources: etcd + apiextensions-apiserver.

Both binaries are built from Debian's packages by ``hack/build-apiserver.sh`` (``make setup``
runs it) into ``${OOMF_CACHE:-~/.cache/oomforensics}/k8s/bin``. The server stores CRDs and
custom resources in a real etcd and does what a cluster does with them: structural-schema
defaulting, validation and pruning, the status subresource, ``metadata.generation``,
``resourceVersion``, watches and Table output. It does not serve ``/api``, the ``/apis`` root
or any core resource (no namespaces, pods or events): a custom resource can be created in any
namespace name, because the NamespaceLifecycle admission plugin is off.

Use it from a test module (or a conftest.py) through the session-scoped ``apiserver`` fixture,
registered by importing its function (named apart so that the test argument shadows nothing)::

    from tests.support.apiserver import apiserver_fixture  # noqa: F401

    def test_something(apiserver: ApiServer) -> None:
        with httpx.Client(base_url=apiserver.url, verify=apiserver.ssl_context()) as http:
            http.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")

or directly: ``with ApiServerProcess() as proc: proc.server.url``. Every request authenticates
with an admin client certificate in the group ``system:masters`` (``client_cert``/
``client_key``, or ``kubeconfig`` for kubectl and the kubernetes client). Only that group is
authorized: the server delegates authorization to itself and has no SubjectAccessReview API,
so any other identity (anonymous too) gets a 500 naming subjectaccessreviews, never a 403.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import pytest

from tests.support.waiting import eventually

CACHE_DIR = Path(os.environ.get("OOMF_CACHE") or Path.home() / ".cache" / "oomforensics")
K8S_BIN: Path = CACHE_DIR / "k8s" / "bin"
APISERVER_BIN: Path = K8S_BIN / "apiextensions-apiserver"
ETCD_BIN: Path = K8S_BIN / "etcd"
KUBECTL_BIN: Path = K8S_BIN / "kubectl"

SETUP_HINT = "run hack/build-apiserver.sh (make setup does)"
KUBECTL_HINT = "run hack/get-kubectl.sh (make setup does)"

START_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0
# Admission plugins that need core resources (namespaces) or webhooks this server cannot have.
DISABLED_ADMISSION = (
    "NamespaceLifecycle",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
    "MutatingAdmissionPolicy",
)
# Every check but informer-sync: the server keeps an informer on core Services (to resolve
# conversion webhooks) and there is no core API behind it, so that one never syncs.
READYZ = "/readyz?exclude=informer-sync"
ADMIN_USER = "oomforensics-admin"
ADMIN_GROUP = "system:masters"


def apiserver_binaries_present() -> bool:
    return all(os.access(path, os.X_OK) for path in (APISERVER_BIN, ETCD_BIN))


def kubectl_present() -> bool:
    return os.access(KUBECTL_BIN, os.X_OK)


@dataclass(frozen=True)
class ApiServer:
    """How to reach a running server: its URL and the admin credentials."""

    url: str  # https://127.0.0.1:PORT
    ca_file: Path  # signs the serving certificate and the client certificates
    client_cert: Path  # admin, group system:masters
    client_key: Path
    kubeconfig: Path  # points at url with the admin certificate

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts ``ca_file`` only and presents the admin client certificate."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


class ApiServerProcess:
    """``with ApiServerProcess() as proc:`` etcd and apiextensions-apiserver, both running.

    Each instance has its own temporary directory (certificates, kubeconfig, etcd data, logs)
    and free loopback ports; the exit stops both processes and removes the directory.
    A failed start raises RuntimeError with the tail of both logs.
    """

    def __init__(self, *, start_timeout: float = START_TIMEOUT) -> None:
        if not apiserver_binaries_present():
            raise RuntimeError(
                f"apiextensions-apiserver or etcd not found in {K8S_BIN}: {SETUP_HINT}"
            )
        self.start_timeout = start_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="oomf-apiserver-"))
        self.etcd_log = self.workdir / "etcd.log"
        self.apiserver_log = self.workdir / "apiserver.log"
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._server: ApiServer | None = None

    @property
    def server(self) -> ApiServer:
        if self._server is None:
            raise RuntimeError("the API server is not running (use ApiServerProcess as `with`)")
        return self._server

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        # The server first: it would log etcd connection errors while stopping.
        _stop(self._apiserver)
        _stop(self._etcd)
        self._apiserver = self._etcd = None
        self._server = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def logs_tail(self, lines: int = 40) -> str:
        return "\n".join(
            f"---- last lines of {path.name} ----\n{_tail(path, lines)}"
            for path in (self.etcd_log, self.apiserver_log)
        )

    # -- start-up ----------------------------------------------------------------------------

    def _start(self) -> None:
        certs = _make_certificates(self.workdir / "pki")
        # A port picked free can be taken before the process binds it: try again on fresh ones.
        for attempt in range(3):
            ports = _free_ports(3)
            server = ApiServer(
                url=f"https://127.0.0.1:{ports[2]}",
                ca_file=certs.ca_cert,
                client_cert=certs.admin_cert,
                client_key=certs.admin_key,
                kubeconfig=self.workdir / "kubeconfig",
            )
            _write_kubeconfig(server)
            try:
                self._start_etcd(ports[0], ports[1])
                self._start_apiserver(server, ports[0], certs)
            except _PortTaken:
                _stop(self._apiserver)
                _stop(self._etcd)
                self._apiserver = self._etcd = None
                if attempt == 2:
                    raise RuntimeError(f"no free ports after 3 tries\n{self.logs_tail()}") from None
                continue
            self._server = server
            return

    def _start_etcd(self, client_port: int, peer_port: int) -> None:
        client = f"http://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        data = self.workdir / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)
        argv = [
            str(ETCD_BIN),
            "--name=oomf-test",
            f"--data-dir={data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=oomf-test={peer}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync",  # test data: durability across power loss does not matter
            "--log-level=warn",
        ]
        self._etcd = _spawn(argv, self.etcd_log, self.workdir)
        deadline = time.monotonic() + self.start_timeout
        while not self._etcd_healthy(client):
            self._check_alive(self._etcd, "etcd", self.etcd_log)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"etcd not healthy on {client} after {self.start_timeout:g}s\n"
                    + self.logs_tail()
                )
            time.sleep(0.05)  # poll interval: the health probe decides

    def _start_apiserver(self, server: ApiServer, etcd_port: int, certs: _Certificates) -> None:
        port = server.url.rsplit(":", 1)[1]
        kubeconfig = str(server.kubeconfig)
        argv = [
            str(APISERVER_BIN),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'serving'}",
            f"--tls-cert-file={certs.serving_cert}",
            f"--tls-private-key-file={certs.serving_key}",
            f"--client-ca-file={certs.ca_cert}",
            # It has no core API behind it: it delegates to itself, where system:masters is
            # always allowed and certificates are checked against --client-ca-file.
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--authentication-skip-lookup",
            f"--disable-admission-plugins={','.join(DISABLED_ADMISSION)}",
            # Priority and fairness reads its configuration from a flowcontrol API this server
            # does not serve (its informers would never sync): plain max-in-flight limits.
            "--enable-priority-and-fairness=false",
        ]
        self._apiserver = _spawn(argv, self.apiserver_log, self.workdir)
        context = server.ssl_context()
        deadline = time.monotonic() + self.start_timeout
        last = "no answer yet"
        while True:
            if self._apiserver.poll() is not None and _port_taken(self.apiserver_log):
                raise _PortTaken
            self._check_alive(self._apiserver, "apiextensions-apiserver", self.apiserver_log)
            ready, last = _readyz(server.url, context)
            if ready:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"apiextensions-apiserver not ready at {server.url}{READYZ} after "
                    f"{self.start_timeout:g}s (last answer: {last})\n{self.logs_tail()}"
                )
            time.sleep(0.1)  # poll interval: /readyz decides

    @staticmethod
    def _etcd_healthy(client_url: str) -> bool:
        try:
            with urllib.request.urlopen(f"{client_url}/health", timeout=2) as response:
                return bool(json.loads(response.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def _check_alive(self, process: subprocess.Popen[bytes], name: str, log: Path) -> None:
        code = process.poll()
        if code is None:
            return
        if _port_taken(log):
            raise _PortTaken
        raise RuntimeError(f"{name} exited with status {code} while starting\n{self.logs_tail()}")


def wait_for_crd(http: httpx.Client, name: str, timeout: float = 30.0) -> dict[str, Any]:
    """Wait until CRD `name` is Established and its group version lists it; returns the CRD.

    Right after a create, the CRD's ``status.conditions`` is ``null``, not a list.
    """
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"

    def established() -> dict[str, Any] | None:
        crd: dict[str, Any] = http.get(path).raise_for_status().json()
        conditions = (crd.get("status") or {}).get("conditions") or []
        ok = any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
        return crd if ok else None

    crd = eventually(established, timeout=timeout, what=f"CRD {name} Established")
    group = crd["spec"]["group"]
    plural = crd["spec"]["names"]["plural"]
    for version in (v["name"] for v in crd["spec"]["versions"] if v["served"]):

        def served(version: str = version) -> bool:
            response = http.get(f"/apis/{group}/{version}")
            names = {r["name"] for r in response.json()["resources"]} if response.is_success else ()
            return plural in names

        eventually(served, timeout=timeout, what=f"{plural}.{group}/{version} served")
    return crd


@pytest.fixture(scope="session", name="apiserver")
def apiserver_fixture() -> Iterator[ApiServer]:
    """A running server for the whole session (CRDs and objects persist between tests)."""
    if not apiserver_binaries_present():
        pytest.fail(f"apiextensions-apiserver and etcd are not in {K8S_BIN}: {SETUP_HINT}")
    with ApiServerProcess() as process:
        yield process.server


# -- helpers ---------------------------------------------------------------------------------


class _PortTaken(Exception):
    """A process could not bind the port picked for it."""


@dataclass(frozen=True)
class _Certificates:
    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path


def _make_certificates(pki: Path) -> _Certificates:
    """A self-signed CA, a serving certificate for 127.0.0.1 and an admin client certificate.

    The openssl command line does it (the test environment has no `cryptography`). EC P-256
    keys, and the extensions strict verifiers require (key usages, key identifiers).
    """
    pki.mkdir(parents=True)
    ca_key, ca_cert = pki / "ca.key", pki / "ca.crt"
    _openssl(
        "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-keyout", ca_key, "-out", ca_cert, "-days", "3", "-subj", "/CN=oomforensics-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "-addext", "subjectKeyIdentifier=hash",
    )  # fmt: skip

    def leaf(name: str, subject: str, extensions: str) -> tuple[Path, Path]:
        key, csr, cert, ext = (pki / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
        ext.write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n" + extensions
        )
        _openssl(
            "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-keyout", key, "-out", csr, "-subj", subject,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "3", "-extfile", ext,
        )  # fmt: skip
        return cert, key

    serving_cert, serving_key = leaf(
        "serving",
        "/CN=127.0.0.1",
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    admin_cert, admin_key = leaf(
        "admin", f"/O={ADMIN_GROUP}/CN={ADMIN_USER}", "extendedKeyUsage=clientAuth\n"
    )
    return _Certificates(ca_cert, serving_cert, serving_key, admin_cert, admin_key)


def _openssl(*args: str | Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl command is needed to make test certificates")
    result = subprocess.run(
        [openssl, *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace")
        raise RuntimeError(f"openssl {args[0]} failed ({result.returncode}): {stderr}")


def _write_kubeconfig(server: ApiServer) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "oomf-test",
                "cluster": {"server": server.url, "certificate-authority": str(server.ca_file)},
            }
        ],
        "users": [
            {
                "name": ADMIN_USER,
                "user": {
                    "client-certificate": str(server.client_cert),
                    "client-key": str(server.client_key),
                },
            }
        ],
        "contexts": [
            {"name": "oomf-test", "context": {"cluster": "oomf-test", "user": ADMIN_USER}}
        ],
        "current-context": "oomf-test",
    }
    # JSON is YAML: every kubeconfig reader accepts it.
    server.kubeconfig.write_text(json.dumps(config, indent=2) + "\n")


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _spawn(argv: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: _stop ends it and only it
        )


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)


def _readyz(url: str, context: ssl.SSLContext) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(f"{url}{READYZ}", context=context, timeout=5) as response:
            body = response.read().decode(errors="replace").strip()
            return response.status == 200 and body == "ok", f"{response.status} {body[:200]}"
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        failing = [line for line in body.splitlines() if line.startswith("[-]")]
        return False, f"{exc.code} {'; '.join(failing) or body[-300:]}"
    except (OSError, ssl.SSLError) as exc:
        return False, repr(exc)


def _port_taken(log: Path) -> bool:
    return "address already in use" in _tail(log, 40)


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
