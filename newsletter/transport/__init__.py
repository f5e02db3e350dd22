"""Transports: how a message leaves (base: the protocol and the envelope; outbox: .eml files;
smtp: one relay; pool: several relays with weights and cool-downs).

Imports the foundation only; no cycle: the pool builds on smtp, never the reverse.
"""
