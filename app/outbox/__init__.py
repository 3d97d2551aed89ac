"""The durable outbox: deliveries (back-channel logout, email) that are queued
in the same transaction as the change that causes them and retried by a
worker until the other side takes them."""
