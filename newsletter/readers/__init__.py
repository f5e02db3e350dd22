"""Readers and their consent: addresses, signed tokens, the append-only consent ledger,
subscriptions (sign-up, confirmation, withdrawal), imports, export and erasure.

Imports curation (a field's checks), the store and the foundation.
"""
