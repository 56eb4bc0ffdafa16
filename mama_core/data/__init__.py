"""Tables in: EMBED, RSNA-Mammo, generic CSV and plain DICOM folders -> ImageRecords,
and patient-level splits (docs/architecture.md "mama_core.data")."""

from mama_core.data.detect import load_records
from mama_core.data.embed import load_embed
from mama_core.data.folder import apply_labels, load_dicom_folder
from mama_core.data.generic import load_generic
from mama_core.data.records import ImageRecord, view_key
from mama_core.data.rsna import load_rsna
from mama_core.data.splits import split_by_patient

__all__ = [
    "ImageRecord",
    "apply_labels",
    "load_dicom_folder",
    "load_embed",
    "load_generic",
    "load_records",
    "load_rsna",
    "split_by_patient",
    "view_key",
]
