"""Utility: downstream models on real, synthetic and corrected training sets, scored on real test
(``utility`` is the stage; ``sets`` the training sets and imbalance corrections; ``ensemble`` and
``trees`` the two evaluators; ``resampling``, ``metrics`` and ``multiplicity`` the statistics;
``selection`` the guidance scale chosen on validation; ``external`` the external population)."""
