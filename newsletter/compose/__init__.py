"""Composition: an issue or a notice rendered (Jinja2, premailer) once, checked by
preflight, prepared as MIME and filled per reader; the return paths; a reader's copy.

Imports readers (tokens), curation (the issue), transport (the envelope), the store.
"""
