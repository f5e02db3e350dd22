"""The newsletter desk: a newsroom's weekly email newsletter, from its feed to readers.

The folders are the pipeline, bottom to top; a package imports only those below it
(tests/test_layering.py keeps that so):

    errors, models, settings   the foundation: one exception tree, values, settings
    store/       tables, engine, migrations, the signing keys, the copy between databases
    transport/   how a message leaves: base, outbox, smtp (one relay), pool (several)
    curation/    feeds fetched as hostile input, the article pool, issues
    readers/     addresses, tokens, the consent ledger, subscriptions, import, export
    compose/     rendering, preflight, MIME and DKIM, return paths, a reader's copy
    delivery/    the delivery ledger, the send, workers, notices off the request path
    bounces/     classification, the bounce ledger, mailboxes, the listener
    schedule/    when, the lease, the Friday job, alerts to editors
    app, reports, demo, editors   the composition root (Desk), a send's status for both
                 edges, the demo, the desk's accounts
    cli/  web/   the edges: they parse, call the library and format
"""
