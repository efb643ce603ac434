"""Scoring: per-mask quality, detection metrics, segmentation metrics."""
