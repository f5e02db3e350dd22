"""The schedule: when the Friday send and the reminder fire, the lease that keeps one
sender, the jobs' work (job) and how a run ends (outcome), the long-lived APScheduler
scheduler, and the alerts to editors.

Imports every stage below it; never the composition root or the edges.
"""
