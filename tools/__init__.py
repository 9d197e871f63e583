"""Deploy tools: `make deploy` (deploy.py) and the job's code publish (publish_glue.py)."""
