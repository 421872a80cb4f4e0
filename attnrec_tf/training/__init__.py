"""Training: a split and a `Config` in, a fitted and evaluated model out.

Modules, in the order a run goes through them:

- `run.py`: one whole run (data -> fit -> evaluate -> report -> export), for the train CLI
  and `attnrec_tf.fit`;
- `fit.py`: `fit_and_evaluate`, the run as a short sequence of named steps;
- `distribute.py`: the `tf.distribute` strategy and which process writes;
- `optimizer.py`: the optimizer and its learning-rate schedule;
- `callbacks.py`: full-ranking validation, time budget, best checkpoint, resumable early
  stopping, and the callback that saves the resume state;
- `resume_state.py`: the resume state itself, a plain dataclass with its file;
- `keras_compat.py`: every workaround of a Keras bug, each behind one named, version-guarded
  function.

Nothing here is imported by `import attnrec_tf.training` itself: TensorFlow loads only when a
module that needs it is imported.
"""
