"""Opening a node, testing it step by step, and sending files to it."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from mama_core.errors import MamaError
from mama_core.pacs.nodes import PacsNode
from mama_core.pacs.types import ConnectionReport, PacsError


def open_connection(node: PacsNode):
    """A DicomWebConnection or a DimseConnection (both context managers with the same
    methods: echo, find_studies, series, instances, fetch, store, close)."""
    if node.kind == "dicomweb":
        from mama_core.pacs.dicomweb import DicomWebConnection

        return DicomWebConnection(node)
    from mama_core.pacs.dimse import DimseConnection

    return DimseConnection(node)


def _endpoint(node: PacsNode) -> tuple[str, int, bool]:
    if node.kind == "dimse":
        return node.host, int(node.port), False
    url = urlparse(node.url)
    secure = url.scheme == "https"
    return url.hostname or "", url.port or (443 if secure else 80), secure


def _check_network(node: PacsNode) -> None:
    """DNS, then TCP, then (https) the TLS handshake against the configured CA file."""
    host, port, secure = _endpoint(node)
    try:
        socket.getaddrinfo(host, port)
    except socket.gaierror:
        raise PacsError(f"cannot resolve host name {host!r}", "dns", node.name) from None
    try:
        sock = socket.create_connection((host, port), timeout=min(node.timeout_s, 10.0))
    except ConnectionRefusedError:
        raise PacsError(f"connection refused by {host}:{port} (nothing listening on that port?)", "tcp", node.name) from None
    except (TimeoutError, socket.timeout):
        raise PacsError(f"{host}:{port} did not answer (firewall or wrong address?)", "tcp", node.name) from None
    except OSError as exc:
        raise PacsError(f"cannot connect to {host}:{port}: {exc.strerror or exc}", "tcp", node.name) from None
    with sock:
        if secure:
            _check_tls(sock, host, node)


def _check_tls(sock: socket.socket, host: str, node: PacsNode) -> None:
    context = ssl.create_default_context(cafile=node.ca_file) if node.ca_file else ssl.create_default_context()
    try:
        with context.wrap_socket(sock, server_hostname=host):
            pass
    except ssl.SSLCertVerificationError as exc:
        raise PacsError(f"server certificate not trusted: {exc.verify_message} (check the CA file)", "tls",
                        node.name) from None
    except (ssl.SSLError, OSError) as exc:
        raise PacsError(f"TLS handshake failed: {exc}", "tls", node.name) from None


def check_connection(node: PacsNode) -> ConnectionReport:
    """Name resolution, TCP, TLS, then a C-ECHO / one-result QIDO search (association and
    credentials). The report names the first stage that failed, in words a user can act on."""
    start = time.perf_counter()
    try:
        _check_network(node)
        with open_connection(node) as conn:
            conn.echo()
    except PacsError as exc:
        return ConnectionReport(node.name, False, exc.stage, exc.detail, time.perf_counter() - start)
    except MamaError as exc:
        return ConnectionReport(node.name, False, "config", str(exc), time.perf_counter() - start)
    what = "C-ECHO answered" if node.kind == "dimse" else "QIDO-RS search answered"
    return ConnectionReport(node.name, True, "ok", f"{what} by {node.describe()}", time.perf_counter() - start)


def read_for_store(paths: Sequence[str | Path]) -> list[Dataset]:
    out = []
    for p in paths:
        try:
            out.append(dcmread(p))
        except (InvalidDicomError, OSError) as exc:
            raise PacsError(f"{p}: not a readable DICOM file ({exc})", "config") from None
    return out


def store_files(node: PacsNode, paths: Sequence[str | Path]) -> dict:
    """Send files (STOW-RS or C-STORE). Raises PacsError when the server refuses any."""
    datasets = read_for_store(paths)
    with open_connection(node) as conn:
        refused = conn.store(datasets)
    if refused:
        raise PacsError(f"the server refused {len(refused)} of {len(datasets)} objects", "protocol", node.name)
    return {"stored": [str(ds.SOPInstanceUID) for ds in datasets], "server": node.name}
