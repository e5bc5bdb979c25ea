"""Neural networks: the diffusion denoiser and the downstream classifier."""
