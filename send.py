"""The Friday entry point, what runs on the server: `python send.py` is the scheduler
that sends the approved issue every send day; `--once` is for cron, `--now` for people.
The same command as `newsletter schedule`; `python send.py --help` tells the rest."""

from __future__ import annotations

from newsletter.cli.schedule import schedule

if __name__ == "__main__":
    schedule.main(prog_name="send.py")
