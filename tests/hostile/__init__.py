"""Hostile input: generated malformed checkpoints, arguments and output folders, and fuzz targets per codec."""
