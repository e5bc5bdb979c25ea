"""Evaluation of synthetic data, one subpackage per seam:

- :mod:`~tardiff.evaluate.downstream`: utility. Downstream models (GRU and LightGBM) trained on
  real, synthetic and corrected training sets, scored on real test with shared bootstrap
  resamples; the paired differences, the primary comparison and Holm's adjustment; the guidance
  scale chosen on validation.
- :mod:`~tardiff.evaluate.quality`: fidelity, label fidelity and privacy of the synthetic sets.
- :mod:`~tardiff.evaluate.studies`: the paper's guidance studies and the efficiency table.
- :mod:`~tardiff.evaluate.reporting`: collected tables, figures, tables, the verdict and the
  headline.
"""
