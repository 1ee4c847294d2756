"""Casewire's shared contracts and plumbing; no service logic lives here."""
