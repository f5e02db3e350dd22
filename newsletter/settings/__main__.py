"""python -m newsletter.settings: the README's table of settings."""

from newsletter.settings.table import settings_table

print(settings_table())
