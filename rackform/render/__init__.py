"""Turning results into text, CSV, HTML and plots; no analysis here."""
