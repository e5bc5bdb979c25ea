"""Collected tables, figures and tables of the utility evaluation and the studies, the verdict,
the headline and what DVC shows (``collect``, ``report``, ``study_figures``, ``samples_figure``,
``selection_figure``, ``plotting``, ``verdict``, ``headline``, ``summary``)."""
