"""Class-conditional diffusion: noise schedules, training and samplers."""
