"""fastnlp.speedups.parallel.distribute: MirroredStrategy over two logical CPU devices in-process, and real two-worker clusters
on 127.0.0.1 (one per flavour, and a worker killed with SIGKILL and restarted)."""

import functools
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import fastnlp
from fastnlp.core import flavour as flavours
from fastnlp.core.notices import NoEffectWarning
from fastnlp.core.rebuild import rebuild
from fastnlp.speedups.parallel.launch import WorkerFailure, launch_local_workers

WORKER = Path(__file__).resolve().parents[1] / "helpers" / "multi_worker_train.py"
EXAMPLES, SEQ_LEN, VOCAB, COUNTED = 48, 10, 12, 53


def tiny(flavour, **kwargs):
    return fastnlp.build_lstm(VOCAB, units=8, num_layers=1, embedding_dim=4, seq_len=SEQ_LEN, dropout=0.0, flavour=flavour, **kwargs)  # no dropout: runs compare exactly


def data():
    rng = np.random.default_rng(0)
    return rng.integers(0, VOCAB, (EXAMPLES, SEQ_LEN)), rng.integers(0, VOCAB, (EXAMPLES, SEQ_LEN))


def weights(path):
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def assert_weights_equal(a, b, atol=0.0):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=atol)


# --- one process, two replicas ------------------------------------------------------------------


def test_mirrored_over_two_logical_cpus_trains_like_one_replica(flavour):
    model = tiny(flavour)
    x, y = data()
    reference = rebuild(model)
    distributed = fastnlp.distribute(model, "mirrored")

    assert distributed.distribute_strategy.num_replicas_in_sync == 2
    assert_weights_equal(distributed.get_weights(), model.get_weights())
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    got = distributed.fit(fastnlp.distribute_dataset(dataset, distributed.distribute_strategy, global_batch_size=8), epochs=2, verbose=0)
    want = reference.fit(dataset.batch(8), epochs=2, verbose=0)

    np.testing.assert_allclose(got.history["loss"], want.history["loss"], rtol=1e-5)
    assert_weights_equal(distributed.get_weights(), reference.get_weights(), atol=1e-5)


def test_scale_learning_rate_multiplies_by_the_replicas(flavour):
    distributed = fastnlp.distribute(tiny(flavour), "mirrored", scale_learning_rate=True)
    assert float(np.asarray(distributed.optimizer.learning_rate)) == pytest.approx(2 * 0.001)


def test_scale_learning_rate_refuses_a_schedule():
    import keras

    model = tiny("keras")
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.9)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="has a schedule"):
        fastnlp.distribute(model, "mirrored", scale_learning_rate=True)


def test_auto_on_one_device_warns_that_there_is_nothing_to_parallelize(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.warns(NoEffectWarning, match="nothing to parallelize"):
        model = fastnlp.distribute(tiny("keras"))
    assert model.distribute_strategy.num_replicas_in_sync == 1
    assert fastnlp.applied_speedups(model)[-1].endswith(": no effect")  # not recorded as applied


def test_a_cluster_without_init_distributed_is_refused(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}))
    with pytest.raises(RuntimeError, match="init_distributed\\(\\) was not called"):
        fastnlp.distribute(tiny("keras"))
    with pytest.raises(RuntimeError, match="init_distributed\\(\\) was not called"):
        fastnlp.distribute_dataset(tf.data.Dataset.range(4), global_batch_size=2)


def test_init_distributed_after_tensorflow_started_says_so(monkeypatch):
    tf.constant(0)  # the runtime is running in this process
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}))
    with pytest.raises(RuntimeError, match="before TensorFlow's runtime starts"):
        fastnlp.init_distributed()


def test_slurm_step_with_several_tasks_is_a_cluster(monkeypatch):
    from fastnlp.speedups.parallel.cluster import _cluster_resolver, cluster_configured

    monkeypatch.delenv("TF_CONFIG", raising=False)
    for name, value in {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NODELIST": "node[07-08]", "SLURM_STEP_TASKS_PER_NODE": "1(x2)"}.items():
        monkeypatch.setenv(name, value)
    assert cluster_configured() == "Slurm"
    resolver = _cluster_resolver(tf, "Slurm", port_base=9000)
    assert resolver.cluster_spec().as_dict() == {"worker": ["node07:9000", "node08:9000"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)


def test_distribute_dataset_batch_sizes_and_bad_input():
    strategy = fastnlp.speedups.parallel.distribute.resolve_strategy("mirrored")
    batches = fastnlp.distribute_dataset(tf.data.Dataset.range(10), strategy, per_replica_batch_size=2)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert batches.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA
    with pytest.raises(ValueError, match="exactly one"):
        fastnlp.distribute_dataset(tf.data.Dataset.range(10), strategy, global_batch_size=4, per_replica_batch_size=2)
    with pytest.raises(ValueError, match="positive integer"):
        fastnlp.distribute_dataset(tf.data.Dataset.range(10), strategy, global_batch_size=0)
    with pytest.raises(TypeError, match="tf.data.Dataset"):
        fastnlp.distribute_dataset(np.arange(10), strategy, global_batch_size=2)
    batched = tf.data.Dataset.range(10).batch(3).map(lambda x: x * 2).prefetch(1)
    with pytest.raises(ValueError, match="already batched.*BatchDataset.*unbatch"):  # it made batches of batches
        fastnlp.distribute_dataset(batched, strategy, global_batch_size=4)
    again = fastnlp.distribute_dataset(batched.unbatch(), strategy, global_batch_size=4)
    assert [b.numpy().tolist() for b in again][0] == [0, 2, 4, 6]


def test_backup_resumes_fit_after_a_crash(tmp_path, flavour):
    model = fastnlp.distribute(tiny(flavour), "mirrored", backup_dir=tmp_path / "backup")
    x, y = data()
    epochs_seen = []

    class CrashInEpochTwo(flavours.callback_base(flavour)):
        def on_epoch_begin(self, epoch, logs=None):
            epochs_seen.append(epoch)
            if epoch == 2 and len(epochs_seen) == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=8, epochs=4, callbacks=[CrashInEpochTwo()], verbose=0)
    assert (tmp_path / "backup").exists()
    fresh = fastnlp.distribute(tiny(flavour), "mirrored", backup_dir=tmp_path / "backup")  # a restarted process
    history = fresh.fit(x, y, batch_size=8, epochs=4, callbacks=[CrashInEpochTwo()], verbose=0)
    assert epochs_seen == [0, 1, 2, 2, 3] and history.epoch == [2, 3]
    assert int(fresh.optimizer.iterations.numpy()) == 4 * EXAMPLES // 8  # optimizer state restored too
    assert not any((tmp_path / "backup").glob("*"))  # nothing left once fit completed (tf_keras keeps the empty folder)


# --- real clusters on 127.0.0.1 -----------------------------------------------------------------


def run_workers(tmp_path, flavour, *extra, restarts=0):
    command = [sys.executable, str(WORKER), "--flavour", flavour, "--out", str(tmp_path), *extra]
    try:
        return launch_local_workers(command, 2, restarts=restarts, timeout_s=240, log_dir=tmp_path / "logs")
    except (WorkerFailure, TimeoutError):
        for log in sorted((tmp_path / "logs").glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        raise


def single_replica_reference(flavour, initial, epochs):
    model = tiny(flavour)
    model.set_weights(initial)
    x, y = data()
    history = model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), epochs=epochs, verbose=0)
    return history.history["loss"], model.get_weights()


def test_two_workers_train_identically_and_like_one_replica(tmp_path, flavour):
    assert run_workers(tmp_path, flavour) == 1

    initial = [weights(tmp_path / f"initial-{i}.npz") for i in range(2)]
    assert any(not np.array_equal(a, b) for a, b in zip(*initial, strict=True))  # each built its own random weights
    for i in range(2):
        assert_weights_equal(weights(tmp_path / f"start-{i}.npz"), initial[0])  # ... and starts from the chief's
    assert_weights_equal(weights(tmp_path / "final-0.npz"), weights(tmp_path / "final-1.npz"))

    histories = [json.loads((tmp_path / f"history-{i}.json").read_text()) for i in range(2)]
    assert [h["chief"] for h in histories] == [True, False]
    want_loss, want_weights = single_replica_reference(flavour, initial[0], epochs=2)
    np.testing.assert_allclose(histories[0]["loss"], want_loss, rtol=1e-4)
    assert_weights_equal(weights(tmp_path / "final-0.npz"), want_weights, atol=1e-4)

    seen = [json.loads((tmp_path / f"ids-{i}.json").read_text()) for i in range(2)]
    for epoch in range(2):  # shuffled alike on both workers: each example once per epoch, none dropped
        assert seen[0][epoch] and sorted(seen[0][epoch] + seen[1][epoch]) == list(range(COUNTED))
    assert seen[0][0] != seen[0][1]  # a new order each epoch


def test_a_killed_worker_restarts_and_resumes_from_the_last_epoch(tmp_path):
    backup = tmp_path / "backup"
    attempts = run_workers(tmp_path, "keras", "--epochs", "4", "--backup", str(backup), "--kill-at", "2:3", restarts=1)

    assert attempts == 2
    for i in range(2):
        records = [line.split() for line in (tmp_path / f"epochs-{i}.log").read_text().splitlines()]
        ended = [(int(attempt), int(epoch)) for attempt, event, epoch, *_ in records if event == "end"]
        assert ended == [(0, 0), (0, 1), (1, 2), (1, 3)]  # epochs 0-1 kept, 2 redone after the kill, none repeated
        assert json.loads((tmp_path / f"history-{i}.json").read_text())["iterations"] == 4 * EXAMPLES // 8
    assert_weights_equal(weights(tmp_path / "final-0.npz"), weights(tmp_path / "final-1.npz"))
    assert not backup.exists()


def test_speedups_applied_after_distribute_keep_the_strategy_and_prune_must_come_first(flavour):
    distributed = fastnlp.distribute(tiny(flavour), "mirrored")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = fastnlp.set_steps_per_execution(distributed, steps=2)
    assert compiled.distribute_strategy is distributed.distribute_strategy
    with pytest.raises(ValueError, match="apply prune first"):
        fastnlp.prune(distributed, 0.5)
    with pytest.raises(ValueError, match="made by distribute already"):
        fastnlp.distribute(distributed, "mirrored")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        speedups = [functools.partial(fastnlp.distribute, strategy="mirrored"), functools.partial(fastnlp.prune, sparsity=0.5, frequency=1)]
        model = tiny(flavour, speedups=speedups)  # listed in the wrong order: plan applies prune first
    assert model.distribute_strategy.num_replicas_in_sync == 2
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert set(fastnlp.weight_sparsity(fastnlp.strip_pruning(model)).values()) == {0.5}


# --- the launcher: isolated ports, no orphaned workers --------------------------------------------

RECORD_WORKER = (
    "import os, sys, time\n"
    "folder = sys.argv[1]\n"
    "open(os.path.join(folder, f'{os.getpid()}.netns'), 'w').write(os.readlink('/proc/self/ns/net'))\n"
    "time.sleep(float(sys.argv[2]))\n"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="network namespaces are Linux's")
def test_workers_run_in_a_network_namespace_of_their_own(tmp_path):
    # TensorFlow's worker server binds every interface: the launcher's workers were reachable from the network
    assert launch_local_workers([sys.executable, "-c", RECORD_WORKER, str(tmp_path), "0"], 2) == 1
    namespaces = {path.read_text() for path in tmp_path.glob("*.netns")}
    assert len(list(tmp_path.glob("*.netns"))) == 2 and len(namespaces) == 1  # both workers share one namespace
    assert namespaces != {os.readlink("/proc/self/ns/net")}  # ... which is not this machine's network


def test_launcher_arguments_are_checked_by_name():
    with pytest.raises(ValueError, match="command must be a list of program and arguments"):  # PermissionError: '/'
        launch_local_workers("python -c pass", 1)
    with pytest.raises(ValueError, match="num_workers must be a positive integer"):
        launch_local_workers([sys.executable, "-c", "pass"], 0)


def test_sigterm_to_the_launcher_stops_its_workers(tmp_path):
    import signal
    import subprocess
    import time

    launcher = subprocess.Popen(
        [sys.executable, "-m", "fastnlp", "launch", "--workers", "2", "--", sys.executable, "-c", RECORD_WORKER, str(tmp_path), "120"],
        stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("*.netns"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    pids = [int(path.name.split(".")[0]) for path in tmp_path.glob("*.netns")]
    assert len(pids) == 2, "the workers did not start"
    launcher.send_signal(signal.SIGTERM)  # what kill, a scheduler or a container stop sends
    _, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM" in err, err
    for pid in pids:
        with pytest.raises(ProcessLookupError):  # they used to live on, holding their ports
            os.kill(pid, 0)


def test_a_keras3_string_model_is_refused_and_a_tf_keras_one_gets_its_own_vectorizer():
    import zoo

    with pytest.raises(ValueError, match=r"layer 'text_vectorization.*' \(TextVectorization\) takes strings.*80951"):
        fastnlp.distribute(zoo.build("string_lstm_classifier", "keras").model, strategy="mirrored")
    original = zoo.build("string_lstm_classifier", "tf_keras").model
    copy = fastnlp.distribute(original, strategy="mirrored")
    (vectorizer,) = [layer for layer in copy.layers if type(layer).__name__ == "TextVectorization"]
    assert vectorizer is not original.layers[1] and vectorizer.get_vocabulary() == original.layers[1].get_vocabulary()
