"""HTTP middleware: API keys, body limits, request ids."""
