"""The inference tests' tiny model and studies, shared (one definition of each fixture)."""

from tests.inference.conftest import predictor, studies, studies_dir, tiny_model_dir, user_dirs  # noqa: F401
