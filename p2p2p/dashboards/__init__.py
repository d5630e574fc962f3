"""Voila dashboard notebooks shipped as package data (arrive with viewer dashboards)."""
