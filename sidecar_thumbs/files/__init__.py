"""Files on disk: discovery, fingerprints, atomic writes, the sidecar PNG. Opens only regular files."""
