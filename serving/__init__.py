"""TF Serving deployment files, the local REST server and its client (see serving/README.md)."""
