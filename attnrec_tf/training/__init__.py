"""Training: a split and a `Config` in, a fitted and evaluated model out.

`run.py` is one whole run (data -> fit -> evaluate -> report -> export), `fit.py` its `model.fit`
part; `distribute.py`, `optimizer.py`, `callbacks.py`, `resume_state.py`, `tensorboard.py` and
`keras_compat.py` are its pieces (docs/design.md). `import attnrec_tf.training` imports nothing:
TensorFlow loads only when a module that needs it is imported.
"""
