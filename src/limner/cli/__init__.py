"""The command line: serve, worker, run, models, jobs."""
