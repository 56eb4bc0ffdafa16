"""Find / get / store against a real Orthanc, over DICOMweb and DIMSE (tests/pacs/conftest.py)."""

from __future__ import annotations

import dataclasses
import threading

import pydicom
import pytest

from mama_core.pacs import PacsError, StudyQuery, find_studies, get_study, retrieve_study, store_files, check_connection
from tests.pacs.conftest import OUR_AET, USER


def _uids(studies):
    return {s.study_uid for s in studies}


@pytest.mark.parametrize("kind", ["web", "dimse"])
def test_find_by_modality_patient_and_date(kind, orthanc, web_node, dimse_node):
    node = web_node if kind == "web" else dimse_node
    st = orthanc.studies
    assert {st["current"], st["prior"], st["other"]} <= _uids(find_studies(node, StudyQuery(modality="MG")))
    mine = find_studies(node, StudyQuery(patient_id=st["patient_id"], modality="MG"))
    assert _uids(mine) == {st["current"], st["prior"]}
    current = next(s for s in mine if s.study_uid == st["current"])
    assert current.n_images == 4 and "MG" in current.modalities and current.date
    only_current = find_studies(node, StudyQuery(patient_id=st["patient_id"], date=f"{current.date}-"))
    assert _uids(only_current) == {st["current"]}


@pytest.mark.parametrize("kind,mode", [("web", None), ("dimse", "get"), ("dimse", "move")])
def test_get_with_priors_lands_readable_files_once(kind, mode, orthanc, web_node, dimse_node, tmp_path):
    node = web_node if kind == "web" else dataclasses.replace(dimse_node, retrieve=mode)
    st = orthanc.studies
    reports = []
    result = get_study(node, st["current"], priors=True, root=tmp_path, progress=lambda r: reports.append(r.to_json()))
    assert [s.study_uid for s, _ in result.priors] == [st["prior"]]
    files = sorted(result.folder.glob("*.dcm"))
    assert len(files) == 4
    assert {pydicom.dcmread(f).StudyInstanceUID for f in files} == {st["current"]}
    assert len(list(result.priors[0][1].glob("*.dcm"))) == 4
    assert reports[-1]["finished"] and reports[-1]["fetched"] == 4
    # A second run fetches nothing: every file is already local.
    again = list(retrieve_study(node, st["current"], root=tmp_path))
    assert again[-1].finished and again[-1].already_local == 4 and again[-1].fetched == 0
    assert not list(tmp_path.rglob(".tmp-*"))


def test_stop_flag_cancels_between_files_and_resume_completes(orthanc, web_node, tmp_path):
    stop = threading.Event()
    seen = []
    for report in retrieve_study(web_node, orthanc.studies["other"], stop=stop, root=tmp_path):
        seen.append(report.done)
        if report.done == 1:
            stop.set()
    assert seen[-1] == 1 and report.cancelled
    assert len(list(report.folder.glob("*.dcm"))) == 1
    last = list(retrieve_study(web_node, orthanc.studies["other"], root=tmp_path))[-1]
    assert last.finished and last.already_local == 1 and last.fetched == 3


@pytest.mark.parametrize("kind", ["web", "dimse"])
def test_store_then_find(kind, orthanc, web_node, dimse_node, tmp_path):
    node = web_node if kind == "web" else dimse_node
    src = orthanc.studies["files"][0]
    ds = pydicom.dcmread(src)
    # A study of its own, so the session's uploaded studies stay as they are for other tests.
    ds.StudyInstanceUID, ds.SeriesInstanceUID = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    ds.PatientID = f"STORE-{kind}"
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(tmp_path / "copy.dcm")
    out = store_files(node, [tmp_path / "copy.dcm"])
    assert out["stored"] == [ds.SOPInstanceUID]
    found = orthanc.rest("/tools/find", f'{{"Level":"Instance","Query":{{"SOPInstanceUID":"{ds.SOPInstanceUID}"}}}}'.encode(), "POST")
    assert len(found) == 1


def test_connection_reports_ok_and_each_failure(orthanc, web_node, dimse_node):
    assert check_connection(web_node).ok and check_connection(dimse_node).ok
    bad_pw = dataclasses.replace(web_node, secret="wrong")
    report = check_connection(bad_pw)
    assert (report.ok, report.stage) == (False, "auth"), report
    rejected = check_connection(dataclasses.replace(dimse_node, aet="NOTORTHANC"))
    assert (rejected.ok, rejected.stage) == (False, "association"), rejected
    assert "rejected" in rejected.message
    closed = check_connection(dataclasses.replace(dimse_node, port=orthanc.scp_port))  # nothing listens there
    assert (closed.stage, closed.ok) == ("tcp", False) and "refused" in closed.message
    dns = check_connection(dataclasses.replace(web_node, url="http://no-such-host.invalid/dicom-web"))
    assert dns.stage == "dns", dns


def test_auth_failure_raises_during_find(orthanc, web_node):
    with pytest.raises(PacsError) as info:
        find_studies(dataclasses.replace(web_node, secret="wrong"), StudyQuery())
    assert info.value.stage == "auth" and "wrong" not in str(info.value)


@pytest.mark.parametrize("kind", ["web", "dimse"])
def test_server_killed_mid_retrieve_leaves_only_whole_files(kind, orthanc, tmp_path):
    """A second Orthanc (same storage layout) is killed after the first file; the cache then
    holds only complete files, and a retrieve after a restart resumes."""
    from mama_core.pacs import PacsNode
    from tests.pacs.conftest import OUR_AET as AET, PACS_AET, PASSWORD, OrthancServer, free_port

    server = OrthancServer(tmp_path / "pacs", free_port(), free_port(), free_port()).start()
    try:
        server.upload(sorted(orthanc.studies["folders"][orthanc.studies["other"]].glob("*.dcm")))
        node = (PacsNode("k", "dicomweb", url=server.dicomweb, auth="basic", username=USER, secret=PASSWORD)
                if kind == "web" else
                PacsNode("k", "dimse", aet=PACS_AET, host="127.0.0.1", port=server.dicom_port, calling_aet=AET, timeout_s=5))
        cache = tmp_path / "cache"
        with pytest.raises(PacsError):
            for report in retrieve_study(node, orthanc.studies["other"], root=cache):
                if report.done == 1:
                    server.kill()
        folder = report.folder
        assert [p.name for p in folder.iterdir() if not p.name.endswith(".dcm")] == []
        kept = sorted(folder.glob("*.dcm"))
        assert len(kept) == 1
        assert pydicom.dcmread(kept[0]).pixel_array.shape[0] == 256  # whole file, pixels and all
        server.start()
        last = list(retrieve_study(node, orthanc.studies["other"], root=cache))[-1]
        assert last.finished and last.already_local == 1 and last.fetched == 3
    finally:
        server.kill()



def test_auto_priors_setting_fetches_priors_without_asking(orthanc, web_node, tmp_path):
    from mama_core.pacs import load_settings, save_settings

    settings = load_settings()
    settings.auto_priors = True
    save_settings(settings)
    result = get_study(web_node, orthanc.studies["current"], root=tmp_path)  # priors=None: the setting decides
    assert [s.study_uid for s, _ in result.priors] == [orthanc.studies["prior"]]
    settings.auto_priors = False
    save_settings(settings)
    assert get_study(web_node, orthanc.studies["current"], root=tmp_path).priors == []
