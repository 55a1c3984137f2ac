"""Stores, sub-stores, roles, permissions, curation, invitations and the audit log."""
