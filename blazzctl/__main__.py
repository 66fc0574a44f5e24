from blazzctl.cli.main import run

run()
