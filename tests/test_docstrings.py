"""Every public function (``fastnlp.__all__``) documents its arguments, result and errors, with an example
that the doctest run executes."""

import inspect

import pytest

import fastnlp

FUNCTIONS = [name for name in fastnlp.__all__ if inspect.isfunction(getattr(fastnlp, name))]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_public_function_has_args_returns_raises_and_an_example(name):
    function = getattr(fastnlp, name)
    doc = inspect.getdoc(function) or ""
    signature = inspect.signature(function)
    if signature.parameters:
        assert "Args:" in doc, f"{name}: no Args section"
        for parameter in signature.parameters:
            assert f"{parameter}:" in doc or f"{parameter} " in doc.split("Args:")[1], f"{name}: argument {parameter!r} undocumented"
    if signature.return_annotation not in (None, "None"):
        assert "Returns:" in doc, f"{name}: no Returns section"
    if "raise " in inspect.getsource(function):
        assert "Raises:" in doc, f"{name}: raises, but has no Raises section"
    assert "Examples:" in doc and ">>> " in doc.split("Examples:")[1], f"{name}: no example"
