"""balance stage."""
