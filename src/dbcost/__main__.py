"""``python -m dbcost`` runs the CLI."""

from dbcost.cli import main

main()
