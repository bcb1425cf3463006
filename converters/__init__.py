"""The converter graph: formats, layouts and verification."""
