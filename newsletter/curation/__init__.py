"""Curation, the first stage: feeds fetched as hostile input and parsed, the article pool,
and the issues editors put together from it.

Imports the store and the foundation.
"""
