"""The paper's guidance studies (``stage``: scale sweep, guidance-set size and source) and the
efficiency table of a run (``efficiency``)."""
