"""Delivery, the delivery ledger's stage: a send reserves readers, sends through the
transports, and records each outcome as it happens; workers join a send; notices
(confirmation, welcome) are queued and sent off the request's path.

Imports compose and everything below it.
"""
