"""File I/O: recordings, PLUS sequence files, volumes."""
