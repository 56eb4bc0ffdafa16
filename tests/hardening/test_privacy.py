"""Privacy: log files carry no patient names or IDs (they are replaced by a short salted
hash, `mama_core.logging_setup.redact`), and nothing opens a network connection at run
time (`mama predict`, `mama query`, `mama train` with every AF_INET/AF_INET6 connection
blocked and recorded)."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from pathlib import Path

import pydicom
import pytest

from mama_core import logging_setup
from mama_core.errors import DicomError

from . import jobs, modelfuzz

PATIENT_ID = "PID4471X"
PATIENT_NAME = "DOEHARTLEY^JANESSA"
OTHER_ID = "PID9902Q"
SECRETS = (PATIENT_ID, "DOEHARTLEY", "JANESSA", OTHER_ID)


@pytest.fixture()
def patient_folder(tmp_path):
    """A synthetic study re-labelled with a known patient, in a folder named after her (as
    sites often do); one view carries another PatientID and one file is corrupt."""
    from mama_core.synthetic import generate_studies

    generate_studies(tmp_path / "gen", 1, seed=5, rows=256)
    study = next(p for p in (tmp_path / "gen").iterdir() if p.is_dir())
    root = tmp_path / "archive"
    folder = root / f"{PATIENT_ID}_DOEHARTLEY_JANESSA"
    folder.mkdir(parents=True)
    for i, src in enumerate(sorted(study.glob("*.dcm"))):
        ds = pydicom.dcmread(src)
        ds.PatientID = OTHER_ID if i == 0 else PATIENT_ID
        ds.PatientName = PATIENT_NAME
        ds.save_as(folder / src.name)
    corrupt = folder / "LCC-copy.dcm"
    corrupt.write_bytes((folder / "LCC.dcm").read_bytes()[:3000])
    logging_setup.forget_identifiers()
    yield root, folder, corrupt
    logging_setup.forget_identifiers()


def _assert_clean(text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"log leaks {leaked}:\n{text[:3000]}"


@pytest.fixture()
def detach_file_handlers():
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    yield
    for handler in root.handlers[:]:
        if handler not in before:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def test_redact_is_a_short_salted_hash(monkeypatch, tmp_path):
    monkeypatch.setattr(logging_setup, "_salt", None)
    a = logging_setup.redact(PATIENT_ID)
    assert re.fullmatch(r"[0-9a-f]{10}", a) and a == logging_setup.redact(PATIENT_ID)
    salt_file = Path(logging_setup.__dict__["_load_salt"].__globals__["os"].environ["MAMA_CONFIG_DIR"]) / "log-salt"
    assert salt_file.is_file()
    monkeypatch.setattr(logging_setup, "_salt", b"another-installation")
    assert logging_setup.redact(PATIENT_ID) != a


def test_engine_log_file_has_no_patient_identifiers(patient_folder, detach_file_handlers):
    from mama_core.dicom import find_studies, read_image

    root, folder, corrupt = patient_folder
    log_file = logging_setup.configure_file_logging()
    studies = find_studies(root)
    log = logging.getLogger("mama_core.test")
    log.warning("studies: %s", [(s.patient_id, s.problems) for s in studies])
    log.warning("opened %s", folder / "RCC.dcm")
    try:
        read_image(corrupt)
    except DicomError:
        log.exception("could not read an image")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = log_file.read_text()
    _assert_clean(text)
    assert "disagree on PatientID" in text and f"<id:{logging_setup.redact(PATIENT_ID)}>" in text
    assert "Traceback" in text and "DicomError" in text  # the crash details are still there


def test_desktop_crash_path_log_has_no_patient_identifiers(patient_folder, qtbot, detach_file_handlers):
    from mama_core.dicom import find_studies, read_image
    from mama_desktop.app import setup_logging
    from mama_desktop.notifications import NotificationBar, install_excepthook

    root, folder, corrupt = patient_folder
    bar = NotificationBar()
    qtbot.addWidget(bar)
    saved = sys.excepthook, threading.excepthook
    try:
        log_file = setup_logging()
        install_excepthook(bar)
        studies = find_studies(root)
        bar.notify("warning", "problems while reading the folder", "\n".join(studies[0].problems))
        bar.notify("error", f"{folder}: no mammography studies found")
        try:
            read_image(corrupt)
        except DicomError as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)  # what an uncaught error does
        worker = threading.Thread(target=read_image, args=(corrupt,))
        worker.start()
        worker.join()
    finally:
        sys.excepthook, threading.excepthook = saved
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = log_file.read_text()
    assert text.count("uncaught exception") == 2, text[-2000:]
    _assert_clean(text)
    assert bar.history  # the user still sees the real paths on screen
    assert any(PATIENT_ID in n.message or PATIENT_ID in n.details for n in bar.history)


def test_scrub_leaves_ordinary_text_alone(patient_folder):
    logging_setup.note_identifiers("L", "CC", "MG", PATIENT_ID)  # too short to redact: kept
    text = "L CC view of MG study for " + PATIENT_ID
    assert logging_setup.scrub(text) == f"L CC view of MG study for <id:{logging_setup.redact(PATIENT_ID)}>"


# --------------------------------------------------------------------------- no network

SITECUSTOMIZE = '''
import os, socket
_LOG = os.environ["MAMA_NET_LOG"]
_INET = (socket.AF_INET, socket.AF_INET6)

def _record(what):
    with open(_LOG, "a") as fh:
        fh.write(what + "\\n")

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex

def connect(self, address):
    if self.family in _INET:
        _record(f"connect {address!r}")
        raise OSError("network blocked by the test")
    return _connect(self, address)

def connect_ex(self, address):
    if self.family in _INET:
        _record(f"connect_ex {address!r}")
        raise OSError("network blocked by the test")
    return _connect_ex(self, address)

def create_connection(address, *args, **kwargs):
    _record(f"create_connection {address!r}")
    raise OSError("network blocked by the test")

def getaddrinfo(host, *args, **kwargs):
    if host not in (None, "localhost", "127.0.0.1", "::1"):
        _record(f"getaddrinfo {host!r}")
        raise socket.gaierror("name resolution blocked by the test")
    return _getaddrinfo(host, *args, **kwargs)

_getaddrinfo = socket.getaddrinfo
socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
socket.create_connection, socket.getaddrinfo = create_connection, getaddrinfo
'''


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """(env, attempts log, model dir, studies folder) for CLI runs with the network blocked."""
    from mama_core.synthetic import generate_studies

    base = tmp_path_factory.mktemp("offline")
    block = base / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(SITECUSTOMIZE)
    attempts = base / "attempts.log"
    env = jobs.cli_env(base, {"MAMA_NET_LOG": str(attempts), "PYTHONPATH": f"{block}:{jobs.REPO}"})
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(key, None)  # the engine must be offline by itself, not because the test said so
    model = modelfuzz.build_tiny_model_dir(base / "tiny")
    generate_studies(base / "studies", 2, seed=0, rows=256)
    return env, attempts, model, base / "studies"


def test_the_block_is_active(offline):
    env, attempts, _, _ = offline
    code = "import urllib.request; urllib.request.urlopen('http://example.com', timeout=2)"
    out = jobs.run_cli([code], env, prefix=[sys.executable, "-c"], timeout_s=60)
    assert out.returncode != 0 and "example.com" in attempts.read_text()
    attempts.unlink()


def _first_study(folder: Path) -> Path:
    return next(p for p in sorted(folder.iterdir()) if p.is_dir())


@pytest.mark.parametrize("command", ["predict", "query"])
def test_inference_runs_offline(offline, tmp_path, command):
    env, attempts, model, studies = offline
    study = _first_study(studies)
    args = {"predict": ["predict", str(study), "--model", str(model), "--device", "cpu", "--json"],
            "query": ["query", str(study), "an irregular mass", "--model", str(model), "--device", "cpu",
                      "--out", str(tmp_path / "maps.npz"), "--json"]}[command]
    out = jobs.run_cli(args, env, timeout_s=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert not attempts.exists(), attempts.read_text()
    assert out.events, out.lines[-3:]


@pytest.mark.slow
def test_training_runs_offline(offline, tmp_path):
    env, attempts, _, studies = offline
    smoke = jobs.REPO / "resources" / "configs" / "smoke.yaml"
    args = ["train", "--config", str(smoke), "--data", str(studies), "--out", str(tmp_path / "run"), "--max-steps",
            "2", "--json", "--set", "model.vision.hidden_size=32", "--set", "model.vision.num_layers=1",
            "--set", "image_size=56", "--set", "model.text.max_length=64"]
    out = jobs.run_cli(args, env, timeout_s=400)
    assert out.returncode == 0, out.stderr[-3000:]
    assert not attempts.exists(), attempts.read_text()
    assert json.loads(out.lines[-1])["step"] == 2
