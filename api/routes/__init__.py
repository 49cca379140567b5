"""HTTP routes: thin adapters from requests to ``api.services``."""
