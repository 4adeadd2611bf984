import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path

import pytest

FLAVOURS = ("keras", "tf_keras")
SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(params=FLAVOURS)
def flavour(request):
    """Run a test once with a Keras 3 model and once with a tf_keras model."""
    return request.param


def shared_corpus(relative: str) -> Path:
    """A corpus under ../shared/data, or skip when this checkout has none beside it."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared corpora exist only in the fastnlp workplace)")
    return path
