"""Synthetic datasets rendered from seeds: UltraMNIST."""
