"""A real PACS for the tests: Orthanc (Debian `orthanc` + `orthanc-dicomweb`) on free loopback
ports with a throwaway configuration and storage, started once per session.

Without the Orthanc binary or its DICOMweb plugin the tests that need it skip with that reason.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

# MAMA_ORTHANC: the Orthanc binary when it is not on PATH (or a missing path, to check the skips).
ORTHANC = os.environ.get("MAMA_ORTHANC") or shutil.which("Orthanc") or "/usr/sbin/Orthanc"
PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc/plugins", "/usr/local/share/orthanc/plugins")
USER, PASSWORD = "mama", "s3cret-pw"
PACS_AET, OUR_AET = "ORTHANC", "MAMATEST"


def dicomweb_plugin() -> str | None:
    for d in PLUGIN_DIRS:
        p = Path(d) / "libOrthancDicomWeb.so"
        if p.is_file():
            return str(p)
    return None


def orthanc_missing() -> str | None:
    if not Path(ORTHANC).is_file():
        return "Orthanc is not installed (Debian packages orthanc, orthanc-dicomweb)"
    if dicomweb_plugin() is None:
        return "the Orthanc DICOMweb plugin is not installed (Debian package orthanc-dicomweb)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class OrthancServer:
    root: Path
    http_port: int
    dicom_port: int
    scp_port: int  # our C-MOVE SCP, registered in Orthanc as modality OUR_AET
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def config(self) -> dict:
        storage = str(self.root / "storage")
        return {
            "Name": "MAMATEST", "StorageDirectory": storage, "IndexDirectory": storage,
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": PACS_AET,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD},
            "Plugins": [dicomweb_plugin()], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "DicomModalities": {"mama": [OUR_AET, "127.0.0.1", self.scp_port]},
            "DicomCheckCalledAet": True, "DicomAlwaysAllowEcho": True, "StorageCompression": False,
            "SaveJobs": False, "ConcurrentJobs": 2, "HttpCompressionEnabled": False,
        }

    def start(self) -> "OrthancServer":
        self.root.mkdir(parents=True, exist_ok=True)
        cfg = self.root / "orthanc.json"
        cfg.write_text(json.dumps(self.config()))
        log = open(self.root / "orthanc.log", "ab")
        self.proc = subprocess.Popen([ORTHANC, str(cfg)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited: {(self.root / 'orthanc.log').read_text()[-2000:]}")
            try:
                self.rest("/system")
                with socket.create_connection(("127.0.0.1", self.dicom_port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("Orthanc did not start within 30 s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def rest(self, path: str, data: bytes | None = None, method: str | None = None):
        request = urllib.request.Request(self.url + path, data=data, method=method)
        import base64

        request.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def upload(self, files) -> None:
        for f in files:
            self.rest("/instances", Path(f).read_bytes(), "POST")


def self_signed(folder: Path) -> tuple[Path, Path] | None:
    """A throwaway certificate for 127.0.0.1 (openssl): (key PEM, certificate = CA file), or None.

    (Orthanc 1.10.1 as packaged by Debian crashes on its first HTTPS request, so the TLS test
    uses Python's own https server instead.)"""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return key, cert


def make_studies(out: Path, rows: int = 256) -> dict:
    """Three synthetic MG studies; study 1 is re-filed as an earlier exam of study 0's patient."""
    from mama_core.synthetic import generate_studies

    summary = generate_studies(out, 3, seed=7, rows=rows)
    folders = {uid: next(p.parent for p in out.glob("*/*.dcm") if pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID == uid)
               for uid in summary.study_uids}
    current, prior, other = summary.study_uids
    first = pydicom.dcmread(next(folders[current].glob("*.dcm")), stop_before_pixels=True)
    for f in folders[prior].glob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.PatientID, ds.PatientName = first.PatientID, first.PatientName
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = str(int(first.StudyDate[:4]) - 1) + first.StudyDate[4:]
        ds.save_as(f)
    return {"current": current, "prior": prior, "other": other, "patient_id": str(first.PatientID),
            "folders": folders, "files": sorted(out.glob("*/*.dcm"))}


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    missing = orthanc_missing()
    if missing:
        pytest.skip(missing)
    root = tmp_path_factory.mktemp("orthanc")
    server = OrthancServer(root, free_port(), free_port(), free_port()).start()
    try:
        server.studies = make_studies(root / "studies")
        server.upload(server.studies["files"])
        yield server
    finally:
        server.kill()  # throwaway storage: no need for a graceful (slow) shutdown


@pytest.fixture
def web_node(orthanc):
    from mama_core.pacs import PacsNode

    return PacsNode("web", "dicomweb", url=orthanc.dicomweb, auth="basic", username=USER, secret=PASSWORD)


@pytest.fixture
def dimse_node(orthanc):
    from mama_core.pacs import PacsNode

    return PacsNode("dimse", "dimse", aet=PACS_AET, host="127.0.0.1", port=orthanc.dicom_port,
                    calling_aet=OUR_AET, move_port=orthanc.scp_port, timeout_s=10)
