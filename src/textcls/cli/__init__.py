"""The `textcls` command line: typer commands that parse flags, build configs, call the library and
print rich tables and JSON. Nothing imports it.
"""
