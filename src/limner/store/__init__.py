"""The job store: the state of record for jobs, their events and the workers that run them."""
