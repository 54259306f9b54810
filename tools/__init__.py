"""relaydesk tools: the command line, the one-machine supervisor, replay, export/import,
administration commands and the benchmark. They sit above the services and may import them;
nothing below (services, runtime, contracts) imports from here."""
