# %% [markdown]
# # fastnlp walkthrough
#
# A notebook in a `.py` file: each `# %%` starts a cell (VS Code, PyCharm and Jupytext open it as a
# notebook; `python examples/walkthrough.py` runs it top to bottom, as CI does with `--quick`).
# From text to a trained character LM, what this machine offers, speedups that say what they did,
# a safe checkpoint, and a compressed export that runs with LiteRT.

# %%
import os
import sys
import tempfile
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
QUICK = "--quick" in sys.argv

import numpy as np  # noqa: E402

import fastnlp  # noqa: E402
from fastnlp.demo import default_corpus  # noqa: E402

# %% [markdown]
# ## 1. Data: windows with a target at every position, cached, shuffled and prefetched

# %%
text, corpus = default_corpus()  # Python's own bundled documentation: any UTF-8 text will do
text = text[: 40_000 if QUICK else 400_000]
data = fastnlp.char_lm_dataset(text, seq_len=50, batch_size=64, validation_split=0.1)
print(f"{corpus}: {len(text):,} characters, vocabulary of {data.vocabulary.size}, {data.train_windows:,} training windows")

# %% [markdown]
# ## 2. What this machine offers, and what each speedup would do here

# %%
from fastnlp import hardware  # noqa: E402

print("GPUs:", hardware.gpu_names() or "none", "| CPU:", hardware.cpu_model())
model = fastnlp.build_lstm(data.vocabulary.size, units=32 if QUICK else 256, num_layers=2, seq_len=50)
for status in fastnlp.cudnn_report(model):
    print(status)

# %% [markdown]
# ## 3. Speedups are pure functions: the input model stays as it was; each warns where it cannot help

# %%
with warnings.catch_warnings(record=True) as said:
    warnings.simplefilter("always")
    fast = fastnlp.set_steps_per_execution(fastnlp.enable_mixed_precision(model), steps=8)
for warning in said:
    print("note:", warning.message)
print("applied:", fastnlp.applied_speedups(fast))
print("input untouched:", fastnlp.applied_speedups(model) == ())

# %% [markdown]
# ## 4. Train, keeping the best model on disk (atomic saves: a crash never leaves a half-written file)

# %%
folder = tempfile.mkdtemp()
best = fastnlp.best_checkpoint(fast, os.path.join(folder, "best.keras"))
history = fast.fit(data.train, validation_data=data.validation, epochs=1 if QUICK else 5, callbacks=[best], verbose=2)
restored = fastnlp.load_checkpoint(os.path.join(folder, "best.keras"))
print(f"best validation loss {min(history.history['val_loss']):.3f}")

# %% [markdown]
# ## 5. Export: dynamic-range int8 TFLite, about 4x smaller, run with LiteRT

# %%
window = next(iter(data.validation))[0].numpy()[:8]
exported = fastnlp.to_tflite(restored, "dynamic")
lite = fastnlp.LiteRTModel(exported)
difference = np.abs(lite.predict(window) - restored.predict(window, verbose=0)).max()
print(f"{len(exported) / 1024:.0f} KiB, fused LSTM: {'UNIDIRECTIONAL_SEQUENCE_LSTM' in lite.ops}, "
      f"largest difference from Keras: {difference:.4f}")
