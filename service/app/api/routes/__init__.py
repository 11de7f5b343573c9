"""HTTP route modules; each exposes one ``router``."""
