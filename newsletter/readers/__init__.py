"""Readers and their consent: addresses, signed tokens, the append-only consent ledger,
the readers' statuses (subscribers), sign-up and the double opt-in (optin), the keyed
hashes of suppressed addresses, imports, export and erasure.

Imports curation (a field's checks), the store and the foundation.
"""
