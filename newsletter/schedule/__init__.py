"""The schedule: when the Friday send and the reminder fire, the lease that keeps one
scheduler, the job that sends, and the alerts to editors.

Imports every stage below it; never the composition root or the edges.
"""
