"""Delivery, the delivery ledger's stage: a send (send) reserves readers and feeds them to
its connection threads (run), which send through the transports and record each outcome
as it happens (writer), with the options and the report in report; workers join a send; notices
(confirmation, welcome) are queued and sent off the request's path.

Imports compose and everything below it.
"""
