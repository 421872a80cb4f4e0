"""The benchmarks of attnrec_tf: run from a source checkout, never installed with the package.

- `suites.py`: `python -m benchmarks` (`make bench`), the real-data suites that write
  `benchmarks/results.json` and the tables of BENCHMARKS.md;
- `common.py`: what the suites share (the checkout, result paths, one training run);
- `step_profile.py`: `python -m benchmarks.step_profile`, where a train step's time goes;
- `catalog.py`, `explanations.py`, `recommend_bench.py`: the catalog-size, explanation
  faithfulness and batch-recommendation suites;
- `peers.py`: `--suite peers`, a published SASRec next to ours; `peer_rectools.py` and
  `peer_recbole.py` run in the peers' own venv (no TensorFlow) and import `peer_common.py`.

This file imports nothing, so that the peer scripts (`python -m benchmarks.peer_<name>` with
the repository on PYTHONPATH) load no more of attnrec_tf than they use.
"""
