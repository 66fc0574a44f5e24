from daemons.session.main import run

run()
