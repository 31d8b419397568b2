from tunelab.cli.main import run

run()
