import pytest

from fastnlp.core.measure import StepClock, TrainingRun, lstm_training_flops


def test_time_to_a_loss_is_the_first_evaluation_at_or_below_it():
    run = TrainingRun(batch_size=4, curve=[(0.0, 4.0), (1.0, 3.0), (2.5, 3.2), (4.0, 2.9)])
    assert run.time_to(3.0) == 1.0
    assert run.time_to(2.9) == 4.0
    assert run.time_to(1.0) is None
    assert run.final_loss == 2.9 and run.training_seconds == 4.0


def test_samples_per_second_is_the_median_window_after_warmup():
    clock = StepClock(batch_size=10)  # executions of 2 steps each: a slow warm-up, then 0.1, 0.2 and 1.0 s per step
    seconds = [5.0, 5.0] + [0.2] * 5 + [0.4] * 5 + [2.0] * 5
    clock.marks = [(sum(seconds[: i + 1]), 2 * (i + 1)) for i in range(len(seconds))]
    assert clock.samples_per_second(warmup_steps=4) == pytest.approx(2 * 10 / 0.4)
    assert StepClock(batch_size=10).samples_per_second(warmup_steps=0) is None


def test_lstm_flops_count_every_layer_and_prediction():
    one_layer = lstm_training_flops(seq_len=100, input_dim=64, units=128, num_layers=1, vocab_size=65, predictions_per_sample=100)
    assert one_layer == 3 * (100 * 2 * (64 + 128) * 4 * 128 + 100 * 2 * 128 * 65)
    two_layers = lstm_training_flops(100, 64, 128, 2, 65, 100)
    assert two_layers - one_layer == 3 * 100 * 2 * (128 + 128) * 4 * 128
