"""Operator commands: replay, backfill, forget (erasure) and doctor, plus the suppression store."""
