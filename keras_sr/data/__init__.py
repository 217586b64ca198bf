"""Data: image reading, MATLAB-compatible degradations, tf.data pipelines."""
