"""Ready-made models and training recipes built from the speedups: build_lstm and train_char_lm.
"""
