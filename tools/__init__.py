"""Deploy tools: `make deploy` (deploy.py) and the job's code publish by hand (publish_glue.py)."""
