"""MaMA engine: DICOM, captions, model, losses, training, evaluation, inference, registry. Never imports Qt."""
