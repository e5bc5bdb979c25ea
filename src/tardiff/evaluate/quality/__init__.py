"""How plausible the evaluated synthetic sets are and how close they come to training patients
(``stage``: the fidelity and privacy stages; ``fidelity``, ``label_fidelity``, ``privacy``: the
metrics)."""
