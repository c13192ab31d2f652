"""Backbones, hash heads and the hashing model built from them."""
