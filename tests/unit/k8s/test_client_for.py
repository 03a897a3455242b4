"""The API client authenticates as the kubeconfig says: a CA and a client certificate given
inline (`*-data`, as kind writes them) or as files, against a real TLS server that requires a
client certificate."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import kopf
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from oomforensics.k8s.api import client_for

PEM = serialization.Encoding.PEM


def _certificate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, signer = issuer if issuer else (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if name == "127.0.0.1":
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(name))]),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class Pki:
    def __init__(self, folder: Path) -> None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _certificate("test-ca", ca_key, None, ca=True)
        self.ca_pem = ca.public_bytes(PEM)
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = _certificate("127.0.0.1", server_key, (ca.subject, ca_key), ca=False)
        client_key = ec.generate_private_key(ec.SECP256R1())
        client = _certificate("operator", client_key, (ca.subject, ca_key), ca=False)
        self.client_pem, self.client_key_pem = client.public_bytes(PEM), _key_pem(client_key)
        self.files = {}
        for name, data in {
            "ca.pem": self.ca_pem,
            "server.pem": server.public_bytes(PEM),
            "server.key": _key_pem(server_key),
            "client.pem": self.client_pem,
            "client.key": self.client_key_pem,
        }.items():
            (folder / name).write_bytes(data)
            self.files[name] = folder / name


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, Pki]]:
    """An HTTPS server on 127.0.0.1 that requires a client certificate signed by the CA."""
    pki = Pki(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.files["server.pem"], pki.files["server.key"])
    context.load_verify_locations(pki.files["ca.pem"])
    context.verify_mode = ssl.CERT_REQUIRED

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            peer = writer.get_extra_info("peercert") or {}
            who = dict(x[0] for x in peer.get("subject", ()))["commonName"].encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(who), who))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    listening = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield f"https://127.0.0.1:{port}", pki


async def get(info: kopf.ConnectionInfo) -> str:
    async with client_for(info) as client:
        response = await client.get("/version")
        return response.text


async def test_inline_certificates_as_kind_writes_them(server: tuple[str, Pki]) -> None:
    url, pki = server
    info = kopf.ConnectionInfo(
        server=url,
        ca_data=base64.b64encode(pki.ca_pem),
        certificate_data=base64.b64encode(pki.client_pem),
        private_key_data=base64.b64encode(pki.client_key_pem),
    )
    assert await get(info) == "operator"


async def test_certificate_files(server: tuple[str, Pki]) -> None:
    url, pki = server
    info = kopf.ConnectionInfo(
        server=url,
        ca_path=str(pki.files["ca.pem"]),
        certificate_path=str(pki.files["client.pem"]),
        private_key_path=str(pki.files["client.key"]),
    )
    assert await get(info) == "operator"


async def test_no_client_certificate_is_refused(server: tuple[str, Pki]) -> None:
    url, pki = server
    info = kopf.ConnectionInfo(server=url, ca_path=str(pki.files["ca.pem"]))
    with pytest.raises(httpx.HTTPError):
        await get(info)


async def test_an_unknown_server_certificate_is_refused(server: tuple[str, Pki]) -> None:
    url, pki = server
    info = kopf.ConnectionInfo(
        server=url,
        certificate_path=str(pki.files["client.pem"]),
        private_key_path=str(pki.files["client.key"]),
    )
    with pytest.raises(httpx.ConnectError):
        await get(info)
