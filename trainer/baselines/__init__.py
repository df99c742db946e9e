"""Baselines the HouseX model is compared with (the linear probe on clip-mean log-mel features)."""
