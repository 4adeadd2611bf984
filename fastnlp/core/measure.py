"""Measuring a speedup: training time to a target loss, throughput, peak memory, FLOP/s, fast paths.

Timing follows the guide's rules: evaluation pauses the training clock, throughput is the median
over timed windows after warm-up, and comparisons are ratios taken in one run. ``tune`` and the
bench measure with the same step clock (:func:`step_clock`), the same peak-memory reader
(:class:`PeakMemory`) and the same description of what is in effect (:func:`fast_paths`).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastnlp.core import flavour as flavours
from fastnlp.core import hardware
from fastnlp.core.recurrent import cudnn_report

__all__ = [
    "PeakMemory", "StepClock", "TimedTraining", "TrainingRun", "device_memory_mb", "fast_paths", "in_fresh_process", "lstm_training_flops", "matmul_flops", "median_ms",
    "step_clock", "step_matmul_flops", "time_to", "timed_training_callback",
]


class PeakMemory:
    """Context manager that keeps the peak memory of the work inside it.

    :attr:`peak_mb` is this process's peak resident memory, sampled every ``interval_s``;
    :attr:`device_peak_mb` is the first GPU's peak allocation inside the block where TensorFlow sees
    a GPU, and the same as :attr:`peak_mb` elsewhere.

    Examples:
        >>> with PeakMemory() as memory:
        ...     block = bytearray(50_000_000)
        >>> memory.peak_increase_mb >= 40
        True
    """

    def __init__(self, interval_s: float = 0.01) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self.start_bytes = self.peak_bytes = self.gpu_start_bytes = 0

    def __enter__(self) -> PeakMemory:
        self._gpu = hardware.gpu_in_use()
        if self._gpu is not None:
            import tensorflow as tf

            tf.config.experimental.reset_memory_stats(self._gpu)
            self.gpu_start_bytes = tf.config.experimental.get_memory_info(self._gpu)["current"]
        self.start_bytes = self.peak_bytes = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)
        self.gpu_peak_bytes = None
        if self._gpu is not None:
            import tensorflow as tf

            self.gpu_peak_bytes = tf.config.experimental.get_memory_info(self._gpu)["peak"]

    @property
    def peak_mb(self) -> float:
        """Peak resident memory of the whole process, MB."""
        return self.peak_bytes / 2**20

    @property
    def device_peak_mb(self) -> float:
        """Peak allocation of the first GPU where there is one, else :attr:`peak_mb`, MB."""
        return self.gpu_peak_bytes / 2**20 if self.gpu_peak_bytes is not None else self.peak_mb

    @property
    def device_start_mb(self) -> float:
        """What the first GPU held on entry where there is one, else this process's resident memory on entry, MB."""
        return (self.gpu_start_bytes if self._gpu is not None else self.start_bytes) / 2**20

    @property
    def device_increase_mb(self) -> float:
        """:attr:`device_peak_mb` above :attr:`device_start_mb`: what the work inside added at its peak, MB."""
        return self.device_peak_mb - self.device_start_mb

    @property
    def peak_increase_mb(self) -> float:
        """Peak resident memory above what the process held on entry, MB."""
        return (self.peak_bytes - self.start_bytes) / 2**20


def device_memory_mb() -> float:
    """What the first GPU holds now where TensorFlow sees one, else this process's resident memory, MB
    (what :attr:`PeakMemory.device_start_mb` reads on entering).

    Examples:
        >>> isinstance(device_memory_mb(), float)
        True
    """
    gpu = hardware.gpu_in_use()
    if gpu is not None:
        import tensorflow as tf

        return tf.config.experimental.get_memory_info(gpu)["current"] / 2**20
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class StepClock:
    """Callback hooks (see :func:`step_clock`): the time and the optimizer's step count at each batch end."""

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.marks: list[tuple[float, int]] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.marks = []

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.marks.append((time.perf_counter(), int(self.model.optimizer.iterations.numpy())))

    def samples_per_second(self, warmup_steps: int) -> float | None:
        """The median rate over the executions after the first ``warmup_steps`` steps (None: too few)."""
        timed = [mark for mark in self.marks if mark[1] > warmup_steps]
        rates = [
            (last - first) * self.batch_size / (end - start)
            for (start, first), (end, last) in zip(timed, timed[1:])
            if end > start and last > first
        ]
        return statistics.median(rates) if rates else None


def step_clock(model: Any, batch_size: int) -> Any:
    """A callback for ``model.fit`` noting the time and the optimizer's step count at each batch end.

    Batch ends come once per execution of ``steps_per_execution`` steps; ``samples_per_second`` is
    the median rate over the executions after warm-up, so a burst of other work moves it little.

    Examples:
        >>> from fastnlp import build_lstm
        >>> clock = step_clock(build_lstm(10, units=4, num_layers=1), batch_size=32)
        >>> clock.samples_per_second(warmup_steps=2) is None  # nothing timed yet
        True
    """
    return flavours.callback_class(StepClock, flavours.detect(model))(batch_size)


def fast_paths(model: Any) -> str:
    """What is in effect in ``model``: its compute dtype, XLA, steps per execution, the recurrent kernel.

    Examples:
        >>> from fastnlp import build_lstm
        >>> fast_paths(build_lstm(20, units=4, num_layers=1))
        'float32, generic recurrent kernel (no GPU)'
    """
    policies = {layer.dtype_policy.name for layer in model.layers if type(layer).__name__ != "InputLayer"}
    paths = [policy for policy in sorted(policies) if policy != "float32"] or ["float32"]
    config = model.get_compile_config() or {}
    if config.get("jit_compile") is True:
        paths.append("XLA")
    if (config.get("steps_per_execution") or 1) > 1:
        paths.append(f"{config['steps_per_execution']} steps/execution")
    report = cudnn_report(model)
    if report and hardware.has_gpu():
        paths.append(f"cuDNN {sum(status.eligible for status in report)}/{len(report)} recurrent layers")
    elif report:
        paths.append("generic recurrent kernel (no GPU)")
    return ", ".join(paths)


def time_to(curve: list[tuple[float, float]], loss: float) -> float | None:
    """Training seconds at the first point of ``curve`` (seconds, loss) at or below ``loss`` (None: never).

    Examples:
        >>> time_to([(0.0, 4.2), (10.0, 2.5), (20.0, 1.9)], 2.0), time_to([(0.0, 4.2)], 2.0)
        (20.0, None)
    """
    return next((t for t, value in curve if value <= loss), None)


@dataclass
class TrainingRun:
    """What :func:`timed_training_callback` recorded: the loss curve against training time, and batch timings."""

    batch_size: int
    curve: list[tuple[float, float]] = field(default_factory=list)  # (training seconds, validation loss)
    batch_seconds: list[float] = field(default_factory=list)

    @property
    def training_seconds(self) -> float:
        return self.curve[-1][0] if self.curve else 0.0

    @property
    def final_loss(self) -> float:
        return self.curve[-1][1]

    def time_to(self, loss: float) -> float | None:
        """Training seconds at the first evaluation with validation loss at or below ``loss``."""
        return time_to(self.curve, loss)


class TimedTraining:
    """Callback hooks (see :func:`timed_training_callback`): evaluate on a growing schedule of training time."""

    def __init__(
        self, evaluate: Callable[[], float], run: TrainingRun, budget_s: float, target_loss: float | None,
        min_gap_s: float, growth: float, report: Callable[[str], None] | None,
    ) -> None:
        super().__init__()
        self.evaluate, self.run, self.budget_s, self.target_loss = evaluate, run, budget_s, target_loss
        self.min_gap_s, self.growth, self.report = min_gap_s, growth, report

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.run.curve.append((0.0, self.evaluate()))
        self.elapsed, self.next_eval = 0.0, self.min_gap_s
        self.resumed = time.perf_counter()

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.batch_start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        self.run.batch_seconds.append(now - self.batch_start)
        self.elapsed += now - self.resumed
        done = self.elapsed >= self.budget_s
        if done or self.elapsed >= self.next_eval:
            loss = self.evaluate()
            self.run.curve.append((self.elapsed, loss))
            if self.report:
                self.report(f"  {self.elapsed:7.1f} s  {len(self.run.batch_seconds):6d} steps  val loss {loss:.4f}")
            self.next_eval = max(self.elapsed + self.min_gap_s, self.elapsed * self.growth)
            if done or (self.target_loss is not None and loss <= self.target_loss):
                self.model.stop_training = True
        self.resumed = time.perf_counter()


def timed_training_callback(
    model: Any,
    evaluate: Callable[[], float],
    run: TrainingRun,
    budget_s: float,
    target_loss: float | None = None,
    min_gap_s: float = 1.0,
    growth: float = 1.2,
    report: Callable[[str], None] | None = None,
) -> Any:
    """A callback that evaluates ``evaluate()`` on a growing schedule of training time and stops the fit.

    The clock runs from the start of ``fit`` (so graph tracing counts) and pauses while evaluating.
    Evaluations happen at 0 s and whenever training time passed ``max(last + min_gap_s, last * growth)``;
    training stops at ``budget_s`` or once the loss reaches ``target_loss``. ``report`` receives a
    line per evaluation.
    """
    return flavours.callback_class(TimedTraining, flavours.detect(model))(evaluate, run, budget_s, target_loss, min_gap_s, growth, report)


def in_fresh_process(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` run in a new (spawned) process, so its peak memory is its own and it inherits
    no graphs or caches; ``function`` must be importable (defined at a module's top level)."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def median_ms(call: Callable[[], Any], repeats: int = 30, warmup: int = 3) -> float:
    """Median milliseconds of ``call()`` over ``repeats`` calls, after ``warmup`` untimed ones.

    Examples:
        >>> 0 <= median_ms(lambda: sum(range(100)), repeats=5) < 100
        True
    """
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def matmul_flops(n: int = 2048, dtype: str = "float32", repeats: int = 10) -> float:
    """FLOP/s of an ``n`` x ``n`` matrix product on this machine (median of ``repeats`` after warm-up)."""
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    product = tf.function(lambda m: tf.linalg.matmul(m, m))
    product(a).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        product(a).numpy()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


def step_matmul_flops(batch: int, width: int, units: int, seconds: float = 0.3) -> float:
    """FLOP/s of ``(batch x width) @ (width x 4 units)``, the product an LSTM computes at each time step.

    Timed inside one graph (64 products a call, so Python's dispatch does not count), for about
    ``seconds``; the median over calls.

    Examples:
        >>> step_matmul_flops(8, 16, 16, seconds=0.05) > 0
        True
    """
    import tensorflow as tf

    a = tf.random.normal((batch, width))
    b = tf.random.normal((width, 4 * units))
    products = 64

    @tf.function
    def run(x, y):
        total = tf.zeros((batch, 4 * units))
        for _ in tf.range(products):
            total += tf.linalg.matmul(x, y)
        return total

    run(a, b).numpy()
    times, deadline = [], time.perf_counter() + seconds
    while len(times) < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        run(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 2 * batch * width * 4 * units * products / statistics.median(times)


def lstm_training_flops(
    seq_len: int, input_dim: int, units: int, num_layers: int, vocab_size: int, predictions_per_sample: int
) -> float:
    """Matrix-multiply FLOPs to train on one sample (forward + backward ~ 3 x forward).

    Each LSTM step multiplies ``[x, h]`` by a ``(input + units) x 4 units`` matrix; the output layer
    multiplies ``units x vocab_size`` once per prediction.

    Examples:
        >>> lstm_training_flops(seq_len=1, input_dim=1, units=1, num_layers=1, vocab_size=1, predictions_per_sample=1)
        54.0
    """
    forward = 0.0
    width = input_dim
    for _ in range(num_layers):
        forward += seq_len * 2 * (width + units) * 4 * units
        width = units
    forward += predictions_per_sample * 2 * units * vocab_size
    return 3 * forward
