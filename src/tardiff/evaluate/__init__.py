"""Evaluation of synthetic data: utility metrics and honest paired statistics."""
