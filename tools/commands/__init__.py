"""The commands of the ``relaydesk`` command line (Click; assembled in ``tools/cli.py``): ``up``
and the services, admin, replay, audit, export/import, bench; ``outcomes`` holds the exit
codes and the one-line failures they share."""
