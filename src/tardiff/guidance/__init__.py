"""TarDiff influence guidance: the influence vector G and the per-step guidance terms."""
