"""Message templates: kinds and their contexts, SMS sizes, sandboxed rendering and validation, the defaults,
the versions in the database, and the /templates API."""
