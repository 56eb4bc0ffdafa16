"""DIMSE (PS3.7) through pynetdicom: C-ECHO, C-FIND (study root), C-GET or C-MOVE to our own
storage SCP, C-STORE.

Retrieval is one C-GET / C-MOVE per instance over one association, so that progress is per
file, a stop request is honoured between files and files already local are never asked for.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit,
    JPEGLosslessSV1, JPEGLSLossless, RLELossless,
)
from pynetdicom import AE, build_context, build_role, evt
from pynetdicom import sop_class as sc

from mama_core.pacs.nodes import PacsNode
from mama_core.pacs.types import InstanceInfo, PacsError, SeriesInfo, StudyInfo, StudyQuery

log = logging.getLogger(__name__)
logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # its INFO lines quote query keys

FIND = sc.StudyRootQueryRetrieveInformationModelFind
GET = sc.StudyRootQueryRetrieveInformationModelGet
MOVE = sc.StudyRootQueryRetrieveInformationModelMove
RETRIEVABLE = (  # the storage classes a 2D mammogram is filed under
    sc.DigitalMammographyXRayImageStorageForPresentation, sc.DigitalMammographyXRayImageStorageForProcessing,
    sc.DigitalXRayImageStorageForPresentation, sc.DigitalXRayImageStorageForProcessing,
    sc.ComputedRadiographyImageStorage, sc.SecondaryCaptureImageStorage,
)
TRANSFER_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLosslessSV1, JPEG2000Lossless,
                     JPEG2000, JPEGLSLossless, RLELossless, JPEGBaseline8Bit]
STATUS_OK = 0x0000
PENDING = (0xFF00, 0xFF01)

# One store handler per process for C-MOVE: the SCP is shared, the target folder is set per call.
Sink = Callable[[Dataset], None]


def _q(level: str, **keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(ds, k, v)
    return ds


def _status(status: Dataset | None) -> int | None:
    return int(status.Status) if status is not None and "Status" in status else None


class DimseConnection:
    """An association with one DIMSE peer, opened on first use and released by `close()`."""

    def __init__(self, node: PacsNode):
        self.node = node
        self._assoc = None
        self._sink: Sink | None = None
        self._scp = None
        self._reject_reason: str | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> "DimseConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- association ------------------------------------------------------------------
    def _ae(self) -> AE:
        ae = AE(ae_title=self.node.calling_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.node.timeout_s
        return ae

    def _fail_open(self, assoc) -> PacsError:
        n = self.node
        if assoc.is_rejected:
            why = self._reject_reason or "no reason given"
            return PacsError(f"association rejected by {n.describe()} ({why}); check the AE titles "
                             f"(ours: {n.calling_aet}, theirs: {n.aet})", "association", n.name)
        if assoc.is_aborted:
            return PacsError(f"association aborted by {n.describe()} (no accepted presentation context?)",
                             "association", n.name)
        return PacsError(f"no association with {n.describe()}: connection refused, dropped or timed out",
                         "tcp", n.name)

    def _on_acse(self, event) -> None:
        primitive = getattr(event, "primitive", None)
        if getattr(primitive, "result", None) in (0x01, 0x02):
            self._reject_reason = f"{primitive.reason_str}; {primitive.result_str}"

    def _open(self, contexts: list, roles: list | None = None, handlers: list | None = None):
        n = self.node
        try:
            socket.getaddrinfo(n.host, n.port)
        except socket.gaierror:
            raise PacsError(f"cannot resolve host {n.host!r}", "dns", n.name) from None
        ae = self._ae()
        self._reject_reason = None
        handlers = [(evt.EVT_ACSE_RECV, self._on_acse), *(handlers or [])]
        assoc = ae.associate(n.host, n.port, contexts=contexts, ae_title=n.aet, ext_neg=roles, evt_handlers=handlers)
        if not assoc.is_established:
            raise self._fail_open(assoc)
        return assoc

    def _query_assoc(self):
        if self._assoc is None or not self._assoc.is_established:
            contexts = [build_context(FIND), build_context(GET), build_context(MOVE)]
            contexts += [build_context(uid, TRANSFER_SYNTAXES) for uid in RETRIEVABLE]
            roles = [build_role(uid, scp_role=True) for uid in RETRIEVABLE]
            self._assoc = self._open(contexts, roles, [(evt.EVT_C_STORE, self._on_store)])
        return self._assoc

    def close(self) -> None:
        if self._assoc is not None and self._assoc.is_established:
            self._assoc.release()
        self._assoc = None
        if self._scp is not None:
            self._scp.shutdown()
            self._scp = None

    # ---- C-ECHO / C-FIND ----------------------------------------------------------------
    def echo(self) -> None:
        assoc = self._open([build_context(sc.Verification)])
        try:
            status = _status(assoc.send_c_echo())
        finally:
            assoc.release()
        if status != STATUS_OK:
            raise PacsError(f"C-ECHO answered status {status!r}", "protocol", self.node.name)

    def _find(self, query: Dataset) -> list[Dataset]:
        out = []
        for status, identifier in self._query_assoc().send_c_find(query, FIND):
            code = _status(status)
            if code is None:
                raise PacsError("C-FIND: connection lost or timed out", "tcp", self.node.name)
            if code in PENDING and identifier is not None:
                out.append(identifier)
            elif code != STATUS_OK and code not in PENDING:
                raise PacsError(f"C-FIND refused with status 0x{code:04X}", "protocol", self.node.name)
        return out

    def find_studies(self, query: StudyQuery) -> list[StudyInfo]:
        keys = {"StudyInstanceUID": "", "PatientID": "", "PatientName": "", "StudyDate": "", "AccessionNumber": "",
                "StudyDescription": "", "ModalitiesInStudy": "", "NumberOfStudyRelatedInstances": ""}
        keys.update(query.keys())
        return [StudyInfo.from_dataset(ds) for ds in self._find(_q("STUDY", **keys))][: query.limit]

    def series(self, study_uid: str) -> list[SeriesInfo]:
        found = self._find(_q("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID="", Modality="",
                              BodyPartExamined="", NumberOfSeriesRelatedInstances=""))
        out = []
        for ds in found:
            n = ds.get("NumberOfSeriesRelatedInstances")
            out.append(SeriesInfo(str(ds.SeriesInstanceUID), ds.get("Modality") or None,
                                  ds.get("BodyPartExamined") or None, int(n) if n not in (None, "") else None))
        return out

    def instances(self, study_uid: str, series: SeriesInfo) -> list[InstanceInfo]:
        found = self._find(_q("IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID=series.series_uid,
                              SOPInstanceUID=""))
        check = series.mammography() is None
        return [InstanceInfo(series.series_uid, str(ds.SOPInstanceUID), check) for ds in found]

    # ---- C-GET / C-MOVE -----------------------------------------------------------------
    def _on_store(self, event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        sink = self._sink
        if sink is None:
            return 0xA700  # out of resources: nobody asked for this file
        try:
            sink(ds)
        except Exception:  # noqa: BLE001 - the peer gets a failure status, the caller the error
            log.warning("could not store a retrieved instance", exc_info=True)
            return 0xA700
        return STATUS_OK

    def _scp_server(self):
        if self._scp is None:
            ae = self._ae()
            for uid in RETRIEVABLE:
                ae.add_supported_context(uid, TRANSFER_SYNTAXES)
            bind = "127.0.0.1" if self.node.host in ("127.0.0.1", "localhost", "::1") else ""
            try:
                self._scp = ae.start_server((bind, self.node.move_port), block=False,
                                            evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
            except OSError as exc:
                raise PacsError(f"cannot listen on port {self.node.move_port} for C-MOVE: {exc.strerror or exc}",
                                "config", self.node.name) from None
        return self._scp

    def fetch(self, study_uid: str, instance: InstanceInfo, sink: Sink) -> None:
        """Retrieve one instance; `sink(dataset)` runs (on a pynetdicom thread) as it arrives."""
        ident = _q("IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID=instance.series_uid,
                   SOPInstanceUID=instance.sop_uid)
        assoc = self._query_assoc()
        self._sink = sink
        try:
            if self.node.retrieve == "move":
                self._scp_server()
                self._drain(assoc.send_c_move(ident, self.node.calling_aet, MOVE))
            else:
                self._drain(assoc.send_c_get(ident, GET))
        finally:
            self._sink = None

    def _drain(self, responses) -> None:
        final = None
        for status, identifier in responses:
            code = _status(status)
            if code is None:
                self._assoc = None
                raise PacsError("retrieve interrupted: connection lost or timed out", "tcp", self.node.name)
            final = (code, status)
        if final is None:
            raise PacsError("retrieve: no response", "protocol", self.node.name)
        code, status = final
        failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
        if code not in (STATUS_OK, 0xB000) or failed:
            raise PacsError(f"retrieve refused with status 0x{code:04X} ({failed} sub-operations failed)",
                            "protocol", self.node.name)

    # ---- C-STORE --------------------------------------------------------------------------
    def store(self, datasets: Sequence[Dataset]) -> list[str]:
        """C-STORE each dataset; the SOP Instance UIDs the peer refused."""
        classes = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets})
        contexts = [build_context(uid, [ts]) for uid, ts in classes]
        if len(contexts) > 128:
            raise PacsError("more than 128 kinds of object in one send", "config", self.node.name)
        assoc = self._open(contexts)
        refused = []
        try:
            for ds in datasets:
                try:
                    status = _status(assoc.send_c_store(ds))
                except ValueError:  # no accepted context for this SOP class / transfer syntax
                    status = None
                if status is None and not assoc.is_established:
                    raise PacsError("connection lost during C-STORE", "tcp", self.node.name)
                if status not in (STATUS_OK, 0xB000, 0xB007, 0xB006):
                    refused.append(str(ds.SOPInstanceUID))
        finally:
            if assoc.is_established:
                assoc.release()
        return refused

