"""Bad input to every public function and command: a clear ValueError/TypeError naming the argument, or a result.

Driven by ``fastnlp.__all__`` and each function's signature: every parameter is replaced in turn by
each bad value below while the others keep a small valid call. A new public function fails
``test_every_public_name_is_covered`` until it has a valid call here, and then gets the rest free.

The outcome of each call must be one of:
- it returns (the value was acceptable: a NumPy integer for an integer, say);
- ``ValueError`` or ``TypeError`` (or a subclass fastnlp documents) whose message names the
  argument, raised from fastnlp's own code, not from inside TensorFlow, Keras or the standard library.
The TFLite converter and LiteRT can crash the process, so their cases run in a subprocess.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
from speedup_settings import settings_for

import fastnlp
from fastnlp.speedups import catalog
from fastnlp.speedups.parallel import cluster

PACKAGE = str(Path(fastnlp.__file__).resolve().parent)

#: One of each kind of bad value the issue names.
BAD_VALUES = {
    "None": None,
    "wrong type": object(),
    "empty str": "",
    "empty list": [],
    "NumPy scalar": np.int64(2),
    "negative": -1,
    "NaN": float("nan"),
    "infinite": float("inf"),
    "non-UTF-8 bytes": b"caf\xe9 \xff",
}

#: Names that are not called with user input: result types and warning categories.
NOT_CALLED = {
    "CharLMData": "what char_lm_dataset returns",
    "TextClassificationData": "what text_classification_dataset returns",
    "TuneResult": "what tune returns",
    "FlavourWarning": "a warning category",
    "NoEffectWarning": "a warning category",
    "SpeedupWarning": "a warning category",
}

#: Run in a subprocess: the TFLite converter and LiteRT can end the process (a segfault).
CRASH_PRONE = {"to_tflite", "LiteRTModel"}


def tiny_model(flavour="keras"):
    return fastnlp.build_lstm(12, units=4, num_layers=1, embedding_dim=4, seq_len=5, flavour=flavour)


def tiny_string_model():
    import keras

    vectorize = keras.layers.TextVectorization(max_tokens=12, output_sequence_length=5)
    vectorize.adapt(["a cat sat", "a dog ran"])
    raw = keras.Input((1,), dtype="string")
    return keras.Model(raw, keras.layers.Dense(2)(keras.layers.Embedding(12, 4)(vectorize(raw))))


def tiny_dataset():
    import tensorflow as tf

    ids = np.random.default_rng(0).integers(0, 12, (16, 5)).astype("int32")
    return tf.data.Dataset.from_tensor_slices((ids, ids)).batch(8)


TEXT = "the cat sat on the mat. " * 40


def _checkpoint(tmp_path: Path) -> str:
    from fastnlp.core.checkpoint import save_atomically

    path = tmp_path / "model.keras"
    save_atomically(tiny_model(), path)
    return str(path)


#: A small valid call of each public function: name -> tmp_path -> (positional args, keyword args).
VALID_CALLS = {
    "CharLMRecipe": lambda tmp: ((), {"units": 8, "num_layers": 1, "embedding_dim": 4, "seq_len": 8, "batch_size": 4, "learning_rate": 1e-3}),
    "CharVocabulary": lambda tmp: (("abc",), {}),
    "applied_speedups": lambda tmp: ((tiny_model(),), {}),
    "best_checkpoint": lambda tmp: ((tiny_model(), str(tmp / "best.keras")), {}),
    "build_lstm": lambda tmp: ((12,), {"units": 4, "num_layers": 1, "embedding_dim": 4, "seq_len": 5}),
    "char_lm_dataset": lambda tmp: ((TEXT,), {"seq_len": 8, "batch_size": 4}),
    "clean_text": lambda tmp: (("The 3 cats!",), {"stopwords": {"the"}}),
    "configure_gpu": lambda tmp: ((), {}),
    "cudnn_report": lambda tmp: ((tiny_model(),), {}),
    "distribute": lambda tmp: ((tiny_model(), "default"), {}),
    "distribute_dataset": lambda tmp: ((tiny_dataset().unbatch(), "default"), {"global_batch_size": 4}),
    "init_distributed": lambda tmp: ((), {}),
    "launch_local_workers": lambda tmp: (([sys.executable, "-c", "pass"], 1), {"isolate_network": False}),
    "learning_rate_budget": lambda tmp: ((tiny_model(),), {"steps": 10}),
    "load_checkpoint": lambda tmp: ((_checkpoint(tmp),), {}),
    "load_stopwords": lambda tmp: (("english",), {}),
    "normalize_text": lambda tmp: (("Some  TEXT 42",), {}),
    "prune_units_gradually": lambda tmp: ((tiny_model(), 0.5), {"end_step": 4, "frequency": 2}),
    "remove_stopwords": lambda tmp: (("the cat", {"the"}), {}),
    "set_steps_per_execution": lambda tmp: ((tiny_model(),), {"steps": 2}),
    "split_preprocessing": lambda tmp: ((tiny_string_model(),), {}),
    "strip_pruning": lambda tmp: ((fastnlp.prune(tiny_model("tf_keras")),), {}),
    "text_classification_dataset": lambda tmp: ((["a cat", "a dog"], [0, 1]), {"batch_size": 2}),
    "tokenize": lambda tmp: (("Some text",), {}),
    "train_char_lm": lambda tmp: ((TEXT * 5, 0.5), {"recipe": fastnlp.CharLMRecipe(8, 1, 4, 8, 4, 1e-3), "evaluations": 1}),
    "tune": lambda tmp: ((tiny_model(), tiny_dataset(), []), {"steps": 3, "warmup_steps": 1, "time_budget_s": 0}),
    "weight_sparsity": lambda tmp: ((tiny_model(),), {}),
    "to_tflite": lambda tmp: (("MODEL",), {"quantization": "dynamic"}),  # run in a subprocess
    "LiteRTModel": lambda tmp: (("TFLITE",), {}),  # run in a subprocess
}


def registered_call(transform):
    """Every registered speedup: its own example model and options."""
    settings = settings_for(transform.name)
    return lambda tmp: ((settings.example("keras").model,), dict(settings.try_kwargs))


VALID_CALLS.update({t.name: registered_call(t) for t in catalog.transforms() if t.name not in VALID_CALLS})


def public_callables() -> list[str]:
    return [name for name in fastnlp.__all__ if name not in NOT_CALLED]


def test_every_public_name_is_covered():
    missing = [name for name in public_callables() if name not in VALID_CALLS]
    assert not missing, f"give these public names a valid call in tests/test_bad_input.py: {missing}"


def parameters(function) -> list[inspect.Parameter]:
    target = function.__init__ if inspect.isclass(function) else function
    return [p for p in inspect.signature(target).parameters.values() if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def bad_calls(name: str, args: tuple, kwargs: dict):
    """Each (parameter, bad-value label, args, kwargs): the valid call with one argument replaced."""
    function = getattr(fastnlp, name)
    for index, parameter in enumerate(parameters(function)):
        for label, value in BAD_VALUES.items():
            new_args, new_kwargs = list(args), dict(kwargs)
            if parameter.kind == parameter.KEYWORD_ONLY or index >= len(args):
                new_kwargs[parameter.name] = value
            else:
                new_args[index] = value
            yield parameter.name, label, tuple(new_args), new_kwargs


def judge(name: str, parameter: str, call) -> str | None:
    """None when ``call()`` behaves; else what went wrong."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call()
        except (ValueError, TypeError, LookupError) as error:
            frames = traceback.extract_tb(error.__traceback__)
            where = frames[-1].filename if frames else ""
            ours = [frame for frame in frames if frame.filename.startswith(PACKAGE)]
            if not ours or not where.startswith(PACKAGE):
                return f"{type(error).__name__} from {where}:{frames[-1].lineno if frames else '?'}: {str(error)[:160]}"
            if parameter not in str(error) and parameter.replace("_", " ") not in str(error):
                return f"{type(error).__name__} does not name {parameter!r}: {str(error)[:160]}"
        except Exception as error:  # noqa: BLE001 - any other kind is the finding
            return f"{type(error).__name__}: {str(error)[:160]}"
    return None


def in_process_names() -> list[str]:
    return [name for name in public_callables() if name not in CRASH_PRONE]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", in_process_names())
def test_bad_arguments_are_refused_by_name_or_work(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a bad path argument that is accepted lands here
    monkeypatch.setattr(cluster, "_initialized", {})  # init_distributed's strategy stays in this test
    args, kwargs = VALID_CALLS[name](tmp_path)
    function = getattr(fastnlp, name)
    problems = []
    for parameter, label, bad_args, bad_kwargs in bad_calls(name, args, kwargs):
        problem = judge(name, parameter, lambda: function(*bad_args, **bad_kwargs))
        if problem:
            problems.append(f"{name}({parameter}={label}): {problem}")
    assert not problems, "\n".join(problems)


CRASH_PRONE_SCRIPT = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[1])
import test_bad_input as suite
import fastnlp
from pathlib import Path
model = suite.tiny_model()
content = fastnlp.to_tflite(model)
problems = []
for name in sorted(suite.CRASH_PRONE):
    args, kwargs = suite.VALID_CALLS[name](Path(sys.argv[2]))
    args = tuple(model if a == "MODEL" else content if a == "TFLITE" else a for a in args)
    for parameter, label, bad_args, bad_kwargs in suite.bad_calls(name, args, kwargs):
        print(name, parameter, label, file=sys.stderr, flush=True)  # the last line names a crash
        problem = suite.judge(name, parameter, lambda: getattr(fastnlp, name)(*bad_args, **bad_kwargs))
        if problem:
            problems.append(f"{name}({parameter}={label}): {problem}")
lite = fastnlp.LiteRTModel(content)
for label, value in suite.BAD_VALUES.items():
    problem = suite.judge("predict", "inputs", lambda: lite.predict(value))
    if problem:
        problems.append(f"LiteRTModel.predict(inputs={label}): {problem}")
print(json.dumps(problems))
"""


def test_export_and_litert_bad_arguments_in_a_subprocess(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", CRASH_PRONE_SCRIPT, str(Path(__file__).parent), str(tmp_path)],
        capture_output=True, text=True, errors="replace", timeout=600, check=False, cwd=tmp_path,
    )
    last_call = (result.stderr.strip().splitlines() or ["?"])[-1]
    assert result.returncode == 0, f"the process ended ({result.returncode}) during: {last_call}\n{result.stderr[-2000:]}"
    problems = json.loads(result.stdout.strip().splitlines()[-1])
    assert not problems, "\n".join(problems)


# --- the command line ----------------------------------------------------------------------------------

BAD_OPTION_VALUES = ["", "abc", "-1", "0", "nan", "inf", "1e400", "\udcff"]


class Reached(Exception):
    """The command accepted its arguments and got as far as its work."""


def command_options():
    """(subcommand, option) for every option of every subcommand that takes a value."""
    from fastnlp.harness.cli import _parser

    parser = _parser()
    (subparsers,) = [action for action in parser._actions if action.dest == "command"]
    for command, subparser in subparsers.choices.items():
        for action in subparser._actions:
            if action.option_strings and action.nargs != 0 and action.dest not in ("help", "worker_command"):
                yield command, action.option_strings[-1]


def test_every_subcommand_has_options_checked():
    from fastnlp.harness.cli import _parser

    (subparsers,) = [action for action in _parser()._actions if action.dest == "command"]
    assert {command for command, _ in command_options()} == set(subparsers.choices)


@pytest.mark.parametrize(("command", "option"), list(command_options()))
def test_bad_option_values_are_refused_before_any_work(command, option, tmp_path, monkeypatch, capsys):
    import fastnlp.harness.bench
    import fastnlp.harness.demo
    import fastnlp.recipes.training
    import fastnlp.speedups.parallel.launch
    from fastnlp.harness.cli import main

    def reached(*args, **kwargs):
        raise Reached

    for module, function in [(fastnlp.harness.demo, "run_demo"), (fastnlp.harness.bench, "run_bench"), (fastnlp.recipes.training, "train_char_lm"),
                             (fastnlp.speedups.parallel.launch, "launch_local_workers"), (fastnlp.harness.bench, "plot_results")]:
        monkeypatch.setattr(module, function, reached)
    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    base = {"train": [str(corpus), "--budget", "1"], "demo": [], "bench": [], "launch": []}[command]
    tail = ["--", sys.executable, "-c", "pass"] if command == "launch" else []
    problems = []
    for value in BAD_OPTION_VALUES:
        arguments = [command, *base, option, value, *tail]
        try:
            code = main(arguments)
        except Reached:
            continue  # accepted, and nothing ran before the work itself
        except SystemExit as exit_:
            code = exit_.code
        except Exception as error:  # noqa: BLE001 - the finding
            problems.append(f"{arguments}: {type(error).__name__}: {error}")
            continue
        err = capsys.readouterr().err
        if code != 2 or "Traceback" in err or not err.strip():
            problems.append(f"{arguments}: exit {code}, stderr {err[-300:]!r}")
    assert not problems, "\n".join(problems)
