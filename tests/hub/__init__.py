"""Local Hub tests (a package, so this conftest is `hub.conftest`, not a second top-level `conftest`)."""
