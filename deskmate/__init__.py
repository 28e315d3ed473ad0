"""The deskmate process: the command line and the composition root.

This package sits above every room it wires: it starts the core (`bot.runtime`), installs the
platform edges (`handlers`), then the scheduler loop (`scheduler`), and stops them in reverse.
Nothing below imports it.
"""
