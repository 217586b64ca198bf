"""Training, evaluation and network interpolation entry points (`python -m training.fit`)."""
