"""Python SDK for the medseg service."""
