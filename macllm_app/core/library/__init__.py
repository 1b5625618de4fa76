"""The model library: validation, metadata, import, other apps' stores, the Hub.

Importing this package is cheap: the Hub client and the engines load lazily
inside the functions that need them.
"""
