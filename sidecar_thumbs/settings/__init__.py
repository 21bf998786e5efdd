"""Settings: every field documented, loaded from arguments, the environment and env files."""
