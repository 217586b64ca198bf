"""A run's checkpoints: every variable of the run, kept under `run_dir/checkpoints`, restored
from the newest one that can be read."""

import json
import os
import time

import tensorflow as tf


class SegmentHistory(tf.train.experimental.PythonState):
    """The run's segments (`[{"steps": [first, last], "seconds": s}, ...]`) in its checkpoints:
    Python state, not a variable, so no collective has to carry it between workers."""

    def __init__(self):
        self.earlier, self.saving = [], []

    def serialize(self):
        return json.dumps(self.saving)

    def deserialize(self, string_value):
        self.earlier = json.loads(string_value)


class RunCheckpoints:
    """Everything a run resumes from, kept under `run_dir/checkpoints`: the networks (EMA
    included), both optimizers (slots and iterations), the step, the best validation score so
    far (`train.best_metric`), and how long each segment of the run (start to stop or resume) took.

    `tf.train.CheckpointManager` writes the data files first and replaces the small index file
    last, so a crash mid-write leaves the previous checkpoint as the latest; the last `keep` are
    kept.
    """

    def __init__(self, run_dir, keep, restore_dir=None, **objects):
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        # The best validation score so far, higher is better (train.best_metric, negated for
        # NIQE and LPIPS).
        self.best_score = tf.Variable(float("-inf"), dtype=tf.float64, trainable=False,
                                      name="best_score")
        self.history = SegmentHistory()
        self.checkpoint = tf.train.Checkpoint(step=self.step, best_score=self.best_score,
                                              segments=self.history, **objects)
        self._started = time.perf_counter()
        self._start_step = 0
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(run_dir, "checkpoints"), max_to_keep=keep)
        self.restore_dir = os.path.join(restore_dir or run_dir, "checkpoints")
        self.restored = None

    def restore(self, log=print):
        """Restores the newest readable checkpoint, if there is one; returns the step reached.

        A checkpoint that cannot be read (truncated or corrupt files) is skipped with a warning
        naming it and the one used instead (`tf.train.CheckpointManager` keeps the last
        `keep`); when none can be read, ValueError names them all.
        """
        state = tf.train.get_checkpoint_state(self.restore_dir)
        if state is None or not state.model_checkpoint_path:
            return 0
        candidates = list(reversed(state.all_model_checkpoint_paths)) or \
            [state.model_checkpoint_path]
        failures = []
        for path in candidates:
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except (tf.errors.OpError, ValueError, IndexError, AssertionError) as error:
                reason = str(error).strip().splitlines()[0][:200] or type(error).__name__
                failures.append(f"{path}: {reason}")
                continue
            if failures:
                log(f"warning: checkpoint {candidates[0]} cannot be read ({failures[0]}); "
                    f"resuming from {path} instead")
            self.restored = path
            self._start_step = int(self.step.numpy())
            return self._start_step
        raise ValueError(f"no readable checkpoint in {self.restore_dir}: "
                         + "; ".join(failures) + " (start a new --output, or remove the "
                         "damaged checkpoints)")

    def segments(self, step):
        """The run's segments so far, this one ending at `step`."""
        return self.history.earlier + [{"steps": [self._start_step, step], "seconds": round(
            time.perf_counter() - self._started, 3)}]

    def save(self, step):
        self.step.assign(step)
        self.history.saving = self.segments(step)
        return self.manager.save(checkpoint_number=step)

    @property
    def latest(self):
        return self.manager.latest_checkpoint
