from modeconn.app import cli

cli()
