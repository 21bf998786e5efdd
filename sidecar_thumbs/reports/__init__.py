"""Reports over disk and state: verify, clean, status, the gallery."""
