"""Faults under load (issue 8): a steady stream of reports, one fault injected, then every effect checked
against the records the services and the sinks keep. Destructive, so on a stack of their own (conftest.py);
marked long (make test-long): that stack alone takes about a minute to start."""
