"""Bounces and complaints: DSNs and feedback reports classified, recorded against readers
(the bounce ledger), read from mailboxes or received by the listener.

Imports delivery's level and below.
"""
