"""The Discord front door (discord.py 2.7): client, cogs, views, digest scheduler.

The only package in Precis that imports ``discord``. Entry point:
:func:`bot.adapters.discord.runner.run_discord`.
"""
