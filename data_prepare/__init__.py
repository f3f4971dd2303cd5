"""Data preparation: public medical datasets to VILA-M3 conversation records (``python -m data_prepare``).

See ``docs/data_prepare.md`` for the record schema, every command and the reference bugs fixed here.
"""
