import subprocess
import sys

import fastnlp


def test_import_is_cheap_and_loads_no_tensorflow():
    code = "import sys, fastnlp; print(sorted(m for m in ('tensorflow', 'keras', 'tf_keras', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_building_a_model_imports_no_model_optimization_toolkit():
    code = "import sys; from fastnlp import build_lstm; print(any(m.startswith('tensorflow_model_optimization') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"  # it did once, through catalog -> compress -> the compression objects


def test_every_public_name_resolves():
    for name in fastnlp.__all__:
        assert getattr(fastnlp, name) is not None, name
    assert "build_lstm" in dir(fastnlp)


def test_the_command_line_explains_itself():
    out = subprocess.run([sys.executable, "-m", "fastnlp", "demo", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--corpus FILE" in out and "--quick" in out
