"""Webhooks: signed POSTs of a job's final state, queued in the database (an outbox row
written with the final state) and sent, retried and logged by the workers."""
