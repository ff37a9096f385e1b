"""The ResultsService: the DuckDB results store, its views and its gRPC servicer."""
