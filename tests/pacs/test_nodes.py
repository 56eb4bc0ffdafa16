"""Nodes in the settings, secrets kept out of listings and logs, the CLI, failures by stage
(no PACS needed here)."""

from __future__ import annotations

import json
import logging
import stat

import pytest

from mama_core.cli import main
from mama_core.errors import ConfigError
from mama_core.logging_setup import file_handler
from mama_core.pacs import PacsNode, add_node, check_connection, load_settings, remove_node
from mama_core.pacs.nodes import settings_path
from tests.pacs.conftest import free_port


def _web(**kw):
    return PacsNode("web", "dicomweb", url="http://127.0.0.1:1/dicom-web", **kw)


def test_nodes_persist_with_owner_only_permissions_and_secret_hidden():
    add_node(_web(auth="basic", username="u", secret="hunter2-pw"))
    add_node(PacsNode("pacs1", "dimse", aet="PACS", host="127.0.0.1", port=104))
    settings = load_settings()
    assert settings.nodes["web"].resolved_secret() == "hunter2-pw"
    assert settings.nodes["pacs1"].describe() == "PACS@127.0.0.1:104"
    assert stat.S_IMODE(settings_path().stat().st_mode) == 0o600
    assert "hunter2-pw" not in repr(settings.nodes["web"]) and "hunter2-pw" not in json.dumps(settings.nodes["web"].public())
    with pytest.raises(ConfigError):
        add_node(_web())  # same name
    remove_node("web")
    assert set(load_settings().nodes) == {"pacs1"}


@pytest.mark.parametrize("bad", [
    dict(name="a b", kind="dicomweb", url="http://x"),
    dict(name="n", kind="dicomweb", url="ftp://x"),
    dict(name="n", kind="dicomweb", url="http://x", auth="basic", username="u"),
    dict(name="n", kind="dimse", aet="A" * 17, host="h", port=104),
    dict(name="n", kind="dimse", aet="PACS", host="h", port=70000),
    dict(name="n", kind="carrier-pigeon"),
])
def test_invalid_nodes_are_config_errors(bad):
    with pytest.raises(ConfigError):
        PacsNode(**bad)


def test_secret_from_environment_and_never_in_log_files(tmp_path, monkeypatch):
    node = _web(auth="bearer", secret="env:MAMA_TEST_TOKEN")  # the variable may be missing until used
    with pytest.raises(ConfigError):
        node.resolved_secret()
    monkeypatch.setenv("MAMA_TEST_TOKEN", "tok-very-secret-123")
    assert node.resolved_secret() == "tok-very-secret-123"
    log_file = tmp_path / "t.log"
    logger = logging.getLogger("mama-test-secret")
    handler = file_handler(log_file)
    logger.addHandler(handler)
    try:
        logger.warning("request failed with header Bearer tok-very-secret-123")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert "tok-very-secret-123" not in log_file.read_text()


def test_connection_failures_name_their_stage():
    refused = check_connection(PacsNode("x", "dimse", aet="PACS", host="127.0.0.1", port=free_port(), timeout_s=2))
    assert (refused.ok, refused.stage) == (False, "tcp") and "refused" in refused.message
    dns = check_connection(PacsNode("x", "dimse", aet="PACS", host="no-such-host.invalid", port=104))
    assert (dns.ok, dns.stage) == (False, "dns")
    web = check_connection(PacsNode("x", "dicomweb", url=f"http://127.0.0.1:{free_port()}/dicom-web"))
    assert web.stage == "tcp"


def test_cli_add_list_remove_json(capsys):
    assert main(["pacs", "add", "w", "--dicomweb", "http://127.0.0.1:8042/dicom-web", "--auth", "basic:me:pw-xyz-1", "--json"]) == 0
    assert main(["pacs", "add", "d", "--aet", "ORTHANC", "--host", "127.0.0.1", "--port", "4242", "--json"]) == 0
    capsys.readouterr()
    assert main(["pacs", "list", "--json"]) == 0
    out = capsys.readouterr().out
    listed = json.loads(out)
    assert {n["name"] for n in listed["nodes"]} == {"w", "d"} and "pw-xyz-1" not in out
    assert main(["pacs", "remove", "w", "--json"]) == 0
    assert main(["pacs", "find", "--server", "w"]) == 2  # unknown node: one-line error, exit 2
    assert "no PACS node named 'w'" in capsys.readouterr().err


def test_cli_find_and_get_against_orthanc(orthanc, capsys, tmp_path, monkeypatch):
    from tests.pacs.conftest import PASSWORD, USER

    assert main(["pacs", "add", "local", "--dicomweb", orthanc.dicomweb, "--auth", f"basic:{USER}:{PASSWORD}"]) == 0
    capsys.readouterr()
    assert main(["pacs", "find", "--server", "local", "--modality", "MG", "--json"]) == 0
    studies = json.loads(capsys.readouterr().out)
    assert {orthanc.studies["current"], orthanc.studies["prior"]} <= {s["study_uid"] for s in studies}
    row = next(s for s in studies if s["study_uid"] == orthanc.studies["current"])
    assert row["images"] == 4 and row["modalities"] == ["MG"] and row["patient"]["id"] == orthanc.studies["patient_id"]
    assert main(["pacs", "priors", "--server", "local", "--study", orthanc.studies["current"], "--json"]) == 0
    assert [p["study_uid"] for p in json.loads(capsys.readouterr().out)] == [orthanc.studies["prior"]]
    assert main(["pacs", "get", "--server", "local", "--study", orthanc.studies["current"], "--priors", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert len(list(__import__("pathlib").Path(got["folder"]).glob("*.dcm"))) == 4
    assert [p["study_uid"] for p in got["priors"]] == [orthanc.studies["prior"]]


def test_tls_stage_with_and_without_the_ca_file(tmp_path):
    """A local https server with a self-signed certificate: with the CA file the TLS stage
    passes (the server then answers 404: a 'protocol' failure); without it, 'tls'."""
    import http.server
    import ssl
    import threading

    from tests.pacs.conftest import self_signed

    pem = self_signed(tmp_path)
    if pem is None:
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    key, cert = pem
    httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{httpd.server_address[1]}/dicom-web"
        trusted = check_connection(PacsNode("t", "dicomweb", url=url, ca_file=str(cert), timeout_s=5))
        assert (trusted.ok, trusted.stage) == (False, "protocol") and "HTTP 501" in trusted.message, trusted
        untrusted = check_connection(PacsNode("t", "dicomweb", url=url, timeout_s=5))
        assert (untrusted.ok, untrusted.stage) == (False, "tls") and "not trusted" in untrusted.message
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_only_mammography_series_and_images_are_kept(tmp_path):
    """MG series always; RG/DX/CR/OT/SC only when the series or the image says breast; a real
    CR chest-type file from pydicom-data is not a mammogram, a synthetic MG file is."""
    import pydicom
    from pydicom.data import get_testdata_file

    from mama_core.pacs.types import SeriesInfo, is_mammogram_dataset
    from mama_core.synthetic import generate_studies

    assert SeriesInfo("1", "MG", None, 4).mammography() is True
    assert SeriesInfo("1", "DX", "BREAST", 4).mammography() is True
    assert SeriesInfo("1", "CR", None, 1).mammography() is None  # look at each image
    assert SeriesInfo("1", "SR", None, 1).mammography() is False
    assert SeriesInfo("1", "CT", "CHEST", 90).mammography() is False
    cr = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm", download=False), stop_before_pixels=True)
    assert not is_mammogram_dataset(cr)
    generate_studies(tmp_path, 1, seed=1, rows=128)
    assert is_mammogram_dataset(pydicom.dcmread(next(tmp_path.glob("*/*.dcm")), stop_before_pixels=True))
