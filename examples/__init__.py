"""Small runnable programs the README shows."""
