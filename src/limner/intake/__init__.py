"""Intake: what turns a request body into a job, the same way for the API, workflow steps and batch rows."""
