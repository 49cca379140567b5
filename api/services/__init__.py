"""Service layer: what the routes and the CLI do, over the data-access functions in ``api.db.queries``."""
