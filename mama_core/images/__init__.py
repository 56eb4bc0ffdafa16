"""Mammograms stored as image files (PNG, JPEG, TIFF, PGM): decoding through Pillow and
tifffile, side/view/exam from file names. `mama_core.dicom.read_image` and `find_studies`
accept these files too, so every command does (docs/data.md)."""

from mama_core.images.names import FileExam, NameParts, file_exam, parse_name
from mama_core.images.reader import SUFFIXES, is_image_file, probe, read_pixels

__all__ = ["FileExam", "NameParts", "SUFFIXES", "file_exam", "is_image_file", "parse_name", "probe", "read_pixels"]
