"""Baselines scored on the HouseX clips with the same split, sharpening and metric as the HouseX model."""
