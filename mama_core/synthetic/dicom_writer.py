"""Write a rendered view as a Digital Mammography X-Ray Image - For Presentation file.

Attributes follow the DX / MG IODs (PS3.3 A.26, C.8.11.7 Mammography Image Module):
ImageLaterality, ViewPosition plus ViewCodeSequence (SNOMED CT codes), PresentationIntentType,
ImagerPixelSpacing, 12 of 16 bits stored, MONOCHROME2 with a linear VOI window. Every value
comes from the spec (no wall clock), so the same seed writes the same bytes.
"""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from mama_core.errors import DataError
from mama_core.synthetic.render import BITS_STORED, RenderedView
from mama_core.synthetic.spec import IMAGE_KEYS, StudySpec

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
# PS3.16 CID 4014 view codes (SNOMED CT, designator 'SCT').
VIEW_CODES = {"CC": ("399162004", "cranio-caudal"), "MLO": ("399368009", "medio-lateral oblique")}
# PatientOrientation (PS3.3 C.7.6.1.1.1): first value = direction of increasing column,
# second = increasing row. Left images run chest wall -> nipple (A); right images are stored
# as a modality stores them, chest wall on the right, so columns run towards P.
ORIENTATION = {"LCC": ["A", "R"], "RCC": ["P", "L"], "LMLO": ["A", "FR"], "RMLO": ["P", "FL"]}
WINDOW = (2048, 4096)  # centre, width: the whole 12-bit range, linear


def _file_meta(sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MG_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _view_code(view: str) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodeMeaning = VIEW_CODES[view]
    code.CodingSchemeDesignator = "SCT"
    return code


def _patient_study(ds: Dataset, spec: StudySpec) -> None:
    ds.PatientName = spec.patient_name
    ds.PatientID = spec.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "F"
    ds.PatientAge = f"{spec.age:03d}Y"
    ds.StudyInstanceUID = spec.study_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = spec.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = spec.study_time
    ds.AccessionNumber = spec.accession
    ds.StudyID = str(spec.index + 1)
    ds.StudyDescription = spec.description
    ds.ReferringPhysicianName = ""


def _series_image(ds: Dataset, spec: StudySpec, view: RenderedView) -> None:
    side, position = view.key[0], view.key[1:]
    ds.Modality = "MG"
    ds.SeriesInstanceUID = spec.series_uid(view.key)
    ds.SeriesNumber = IMAGE_KEYS.index(view.key) + 1
    ds.SeriesDescription = f"{side} {position}"
    ds.InstanceNumber = 1
    ds.Manufacturer = "MaMA Workstation synthetic generator"
    ds.BodyPartExamined = "BREAST"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageLaterality = side
    ds.ViewPosition = position
    ds.ViewCodeSequence = [_view_code(position)]
    ds.PatientOrientation = ORIENTATION[view.key]
    ds.BreastImplantPresent = "NO"
    ds.BurnedInAnnotation = "NO"
    ds.ImageComments = "Synthetic image made by mama demo-data; not a patient."


def _pixels(ds: Dataset, view: RenderedView) -> None:
    rows, cols = view.pixels.shape
    spacing = f"{view.spacing_mm:.6g}"
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.EstimatedRadiographicMagnificationFactor = "1.0"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, BITS_STORED, BITS_STORED - 1
    ds.PixelRepresentation = 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    ds.WindowCenter, ds.WindowWidth = str(WINDOW[0]), str(WINDOW[1])
    ds.VOILUTFunction = "LINEAR"
    ds.PresentationLUTShape = "IDENTITY"
    ds.PixelData = view.pixels.astype("<u2", copy=False).tobytes()


def build_dataset(spec: StudySpec, view: RenderedView) -> Dataset:
    """The full MG dataset (with file meta) for one rendered view."""
    ds = Dataset()
    ds.file_meta = _file_meta(spec.sop_uid(view.key))
    ds.SOPClassUID = MG_FOR_PRESENTATION
    ds.SOPInstanceUID = spec.sop_uid(view.key)
    ds.SpecificCharacterSet = "ISO_IR 100"
    _patient_study(ds, spec)
    _series_image(ds, spec, view)
    _pixels(ds, view)
    return ds


def write_view(spec: StudySpec, view: RenderedView, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        build_dataset(spec, view).save_as(path, enforce_file_format=True)
    except OSError as exc:
        raise DataError(f"cannot write synthetic DICOM: {exc.strerror or exc}", path=path) from exc
