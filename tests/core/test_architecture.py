"""The package's layers stay true: imports point one way, no cycles, no private names across modules.

Every ``import`` in ``fastnlp/`` is read from the source, module-level and function-level alike (see
docs/architecture.md for the layers and why).
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "fastnlp"

#: Each layer may import its own and the layers before it, never one after it.
LAYERS = ("fastnlp.core", "fastnlp.preprocess", "fastnlp.speedups", "fastnlp.recipes", "fastnlp.harness")


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def resolve(name: str) -> str | None:
    """The package module that ``name`` (a module, or a name inside one) lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> list[tuple[str, list[str], int]]:
    """``(imported module, names taken from it, line)`` for every import of a fastnlp module in ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names if alias.name.startswith("fastnlp")]
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                source = f"{base}.{source}" if source else base
            if not source.startswith("fastnlp"):
                continue
            names = [alias.name for alias in node.names]
            submodules = [f"{source}.{name}" for name in names if f"{source}.{name}" in MODULES]
            found += [(sub, [], node.lineno) for sub in submodules]  # from package import module
            plain = [name for name in names if f"{source}.{name}" not in MODULES]
            if plain or not submodules:
                found.append((source, plain, node.lineno))
    return [(resolve(target), names, line) for target, names, line in found if resolve(target) not in (None, module)]


def layer(module: str) -> int | None:
    """The index of ``module``'s layer in :data:`LAYERS` (None: the top-level package files)."""
    return next((i for i, prefix in enumerate(LAYERS) if module == prefix or module.startswith(prefix + ".")), None)


def test_every_module_belongs_to_a_layer():
    loose = sorted(m for m in MODULES if layer(m) is None and m not in ("fastnlp", "fastnlp.__main__"))
    assert not loose, f"modules outside every layer of {LAYERS}: {loose}"


def test_no_module_imports_a_layer_above_its_own():
    upward = [
        f"{module}:{line} imports {target} ({LAYERS[layer(target)]} is above {LAYERS[layer(module)]})"
        for module in MODULES
        if layer(module) is not None
        for target, _, line in imports(module)
        if layer(target) is None or layer(target) > layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    graph = {module: {target for target, _, _ in imports(module) if target != "fastnlp"} for module in MODULES}
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_name_is_imported_from_another_module():
    private = [
        f"{module}:{line} imports {', '.join(n for n in names if n.startswith('_'))} from {target}"
        for module in MODULES
        for target, names, line in imports(module)
        if any(name.startswith("_") for name in names)
    ]
    assert not private, "\n".join(private)


def test_no_private_name_of_another_module_is_reached_through_it():
    reached = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {  # names bound to another fastnlp module: `from fastnlp.core import flavour as flavours`
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fastnlp")
            for alias in node.names
            if f"{node.module}.{alias.name}" in MODULES
        }
        reached += [
            f"{module}:{node.lineno} uses {node.value.id}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
            and node.attr.startswith("_") and not node.attr.startswith("__")
        ]
    assert not reached, "\n".join(reached)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from fastnlp.speedups import catalog\n", ["fastnlp.speedups.catalog"]),
        ("def f():\n    from fastnlp.harness.demo import run_demo\n", ["fastnlp.harness.demo"]),
        ("import fastnlp.core.flavour\n", ["fastnlp.core.flavour"]),
    ],
)
def test_the_reader_sees_module_and_function_level_imports(tmp_path, monkeypatch, source, expected):
    probe = PACKAGE / "core" / "probe.py"  # read only through MODULES: nothing is written to the package
    monkeypatch.setitem(MODULES, "fastnlp.core.probe", tmp_path / "probe.py")
    (tmp_path / "probe.py").write_text(source)
    assert [target for target, _, _ in imports("fastnlp.core.probe")] == expected
    assert not probe.exists()
    assert layer(expected[0]) is not None


@pytest.mark.parametrize(
    ("source", "check"),
    [
        ("from fastnlp.harness.demo import run_demo\n", test_no_module_imports_a_layer_above_its_own),
        ("from fastnlp.core.flavour import _accepted\n", test_no_private_name_is_imported_from_another_module),
        ("from fastnlp.core import flavour as flavours\nflavours._accepted({}, None)\n", test_no_private_name_of_another_module_is_reached_through_it),
    ],
)
def test_each_rule_catches_a_breach(tmp_path, monkeypatch, source, check):
    (tmp_path / "probe.py").write_text(source)
    monkeypatch.setitem(MODULES, "fastnlp.core.probe", tmp_path / "probe.py")
    with pytest.raises(AssertionError, match="fastnlp.core.probe"):
        check()


#: Keras methods a model's class owns: setting one on an instance patches behaviour onto one model.
MODEL_METHODS = {
    "fit", "evaluate", "predict", "train_step", "test_step", "predict_step", "call", "compile", "save",
    "make_train_function", "make_test_function", "_maybe_symbolic_build", "_symbolic_build",
}


def test_no_method_is_set_on_an_instance_and_no_keras_attribute_is_bypassed():
    found = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            found += [
                f"{module}:{node.lineno} sets .{target.attr} on an instance"
                for target in targets
                if isinstance(target, ast.Attribute) and target.attr in MODEL_METHODS
            ]
            if isinstance(node, ast.Attribute) and node.attr == "MethodType":
                found.append(f"{module}:{node.lineno} binds a function to one instance (types.MethodType)")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "__setattr__":
                if isinstance(node.func.value, ast.Name) and node.func.value.id == "object":
                    found.append(f"{module}:{node.lineno} bypasses the class's __setattr__ (object.__setattr__)")
    assert not found, "\n".join(found)


def test_the_loader_list_names_every_module_that_registers_a_keras_class():
    from fastnlp.core.serializables import MODULES as LISTED

    listed = {name for names in LISTED.values() for name in names}
    registering = {
        module for module, path in MODULES.items()
        if any(f"{call}(" in path.read_text(encoding="utf-8") for call in ("register_keras_serializable", "get_custom_objects().update"))
        and module != "fastnlp.core.serializables"
    }
    assert listed == registering
    assert all(layer(module) is not None and layer(module) > 0 for module in listed)  # beside their speedups, not in core


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_core_calls_no_speedups_function_at_run_time(tmp_path):
    """Rebuilding, converting, saving and loading a model that speedups made runs what Keras calls of the classes
    they define (a layer's call), but core itself calls nothing of theirs: it holds no stored callable."""
    import functools
    import sys

    import fastnlp
    from fastnlp.core.checkpoint import load_checkpoint
    from fastnlp.core.convert import convert
    from fastnlp.core.rebuild import rebuild

    speedups = [
        "hoist_lstm_projection", "set_steps_per_execution",
        functools.partial(fastnlp.distribute, strategy="mirrored", backup_dir=str(tmp_path / "backup")),
    ]
    model = fastnlp.build_lstm(12, units=4, num_layers=1, embedding_dim=4, seq_len=6, speedups=speedups)
    called = []
    speedups_folder, core_folder = str(PACKAGE / "speedups"), str(PACKAGE / "core")

    def profile(frame, event, arg):
        caller = frame.f_back
        if event == "call" and frame.f_code.co_filename.startswith(speedups_folder) and caller is not None:
            if caller.f_code.co_filename.startswith(core_folder):
                called.append(f"{caller.f_code.co_qualname} -> {frame.f_code.co_qualname}")

    sys.setprofile(profile)
    try:
        copy = rebuild(model)
        other = convert(copy, "tf_keras")
        copy.save(tmp_path / "m.keras")
        loaded = load_checkpoint(tmp_path / "m.keras")
    finally:
        sys.setprofile(None)
    assert not called, called
    assert type(copy).__name__ == "DistributedModel" and type(loaded).__name__ == "DistributedModel"
    assert type(other).__name__ != "DistributedModel"  # the other flavour's copy is not built under the strategy
