"""Hub I/O, model cards, batch conversion and the local Hub."""
