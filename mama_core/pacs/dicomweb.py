"""DICOMweb (PS3.18): QIDO-RS search, WADO-RS retrieve, STOW-RS store through dicomweb-client."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import requests
import requests.adapters
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.session_utils import add_certs_to_session, create_session, create_session_from_user_pass
from pydicom.dataset import Dataset

from mama_core.pacs.nodes import PacsNode
from mama_core.pacs.types import InstanceInfo, PacsError, SeriesInfo, StudyInfo, StudyQuery

log = logging.getLogger(__name__)

STUDY_FIELDS = ("StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "AccessionNumber",
                "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedInstances")
SERIES_FIELDS = ("SeriesInstanceUID", "Modality", "BodyPartExamined", "NumberOfSeriesRelatedInstances")


class _NodeCaAdapter(requests.adapters.HTTPAdapter):
    """Verifies https against the node's CA file. requests lets REQUESTS_CA_BUNDLE /
    CURL_CA_BUNDLE in the environment override `session.verify`, so the file is applied
    here, per request, where the environment cannot replace it."""

    def __init__(self, ca_file: str):
        super().__init__()
        self.ca_file = ca_file

    def send(self, request, **kwargs):
        kwargs["verify"] = self.ca_file
        return super().send(request, **kwargs)


def _session(node: PacsNode) -> requests.Session:
    if node.auth == "basic":
        session = create_session_from_user_pass(node.username, node.resolved_secret())
    else:
        session = create_session()
        if node.auth == "bearer":
            session.headers["Authorization"] = f"Bearer {node.resolved_secret()}"
    if node.ca_file:
        session = add_certs_to_session(session, ca_bundle=node.ca_file)
        session.mount("https://", _NodeCaAdapter(node.ca_file))
    return session


def http_failure(exc: BaseException, node: PacsNode) -> PacsError:
    """A requests failure as a PacsError naming the stage: DNS, refused, TLS, auth, HTTP."""
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        what = "certificate not trusted" if "CERTIFICATE_VERIFY_FAILED" in text else "handshake failed"
        return PacsError(f"TLS {what} for {node.url} (check the CA file)", "tls", node.name)
    if isinstance(exc, requests.exceptions.ConnectionError):
        if "NameResolutionError" in text or "Name or service not known" in text or "getaddrinfo" in text:
            return PacsError(f"cannot resolve the host name of {node.url}", "dns", node.name)
        if "Connection refused" in text or "Errno 111" in text:
            return PacsError(f"connection refused by {node.url} (is the server running on that port?)", "tcp", node.name)
        return PacsError(f"cannot reach {node.url}: connection failed or was dropped", "tcp", node.name)
    if isinstance(exc, requests.exceptions.Timeout):
        return PacsError(f"{node.url} did not answer within {node.timeout_s:g} s", "tcp", node.name)
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        if code in (401, 403):
            return PacsError(f"credentials rejected (HTTP {code})", "auth", node.name)
        return PacsError(f"server answered HTTP {code} {exc.response.reason or ''}".strip(), "protocol", node.name)
    return PacsError(f"{type(exc).__name__}: {text}", "protocol", node.name)


def _dataset(item: dict) -> Dataset:
    return Dataset.from_json(item)


class DicomWebConnection:
    """One DICOMweb service; a requests session kept for the connection's lifetime."""

    def __init__(self, node: PacsNode):
        self.node = node
        self.client = DICOMwebClient(node.url.rstrip("/"), session=_session(node), timeout=node.timeout_s)
        # dicomweb-client retries *every* failure (a refused connection too) with exponential
        # back-off, ~30 s before an error surfaces; a retrieve resumes cheaply, so fail at once.
        self.client.set_http_retry_params(retry=False)

    def __enter__(self) -> "DicomWebConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.client._session.close()

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (requests.exceptions.RequestException, OSError) as exc:
            raise http_failure(exc, self.node) from None

    def echo(self) -> None:
        """A one-result QIDO search: proves reachability, TLS and credentials."""
        self._call(self.client.search_for_studies, limit=1, fields=["StudyInstanceUID"])

    def find_studies(self, query: StudyQuery) -> list[StudyInfo]:
        found = self._call(self.client.search_for_studies, limit=query.limit, fields=list(STUDY_FIELDS),
                           search_filters=query.keys())
        return [StudyInfo.from_dataset(_dataset(item)) for item in found]

    def series(self, study_uid: str) -> list[SeriesInfo]:
        found = self._call(self.client.search_for_series, study_instance_uid=study_uid, fields=list(SERIES_FIELDS))
        out = []
        for item in found:
            ds = _dataset(item)
            n = ds.get("NumberOfSeriesRelatedInstances")
            out.append(SeriesInfo(str(ds.SeriesInstanceUID), ds.get("Modality"), ds.get("BodyPartExamined"),
                                  int(n) if n not in (None, "") else None))
        return out

    def instances(self, study_uid: str, series: SeriesInfo) -> list[InstanceInfo]:
        found = self._call(self.client.search_for_instances, study_instance_uid=study_uid,
                           series_instance_uid=series.series_uid, fields=["SOPInstanceUID"])
        check = series.mammography() is None
        return [InstanceInfo(series.series_uid, str(_dataset(i).SOPInstanceUID), check) for i in found]

    def fetch(self, study_uid: str, instance: InstanceInfo, sink: Callable[[Dataset], None]) -> None:
        """WADO-RS one instance and hand it to `sink` (same shape as the DIMSE retrieve)."""
        sink(self._call(self.client.retrieve_instance, study_uid, instance.series_uid, instance.sop_uid))

    def store(self, datasets: Sequence[Dataset]) -> list[str]:
        """STOW-RS; the SOP Instance UIDs the server refused (empty when all were stored)."""
        response = self._call(self.client.store_instances, list(datasets))
        failed = response.get("FailedSOPSequence") or []
        return [str(item.get("ReferencedSOPInstanceUID", "?")) for item in failed]
