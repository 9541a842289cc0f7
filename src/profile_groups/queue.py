"""The name of the arq queue the API enqueues on and the worker consumes (so the API never
imports the worker module)."""

QUEUE_NAME = "profile_groups"
