"""Bounces and complaints: returned mail classified (classify; complaints; a verdict
with its reason), providers' JSON events (providers), each recorded once against the
readers it names (processor, record: the bounce ledger), read from mailboxes or
received by the listener and the providers' webhooks.

Imports delivery's level and below.
"""
