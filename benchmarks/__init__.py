"""The benchmark tools of a source checkout; none of them is needed to train or serve.

- `suites.py`: `python -m attnrec_tf.bench` (also `attnrec-bench`), the real-data suites that
  write BENCHMARKS.json and BENCHMARKS.md;
- `step_profile.py`: `python -m attnrec_tf.bench.step_profile`, where a train step's time goes;
- `peers.py`: `--suite peers`, a published SASRec next to ours; `peer_rectools.py` and
  `peer_recbole.py` run in the peers' own venv (no TensorFlow) and import `peer_common.py`.

This file imports nothing, so that the peer scripts (`python -m attnrec_tf.bench.peer_<name>`
with the repository on PYTHONPATH) load no more of attnrec_tf than they use.
"""
