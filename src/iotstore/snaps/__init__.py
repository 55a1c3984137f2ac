"""Snaps: registered names, collaborators, uploads, revisions, review, channels, releases."""
