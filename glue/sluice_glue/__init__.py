"""The Sluice ETL job's code: arguments, I/O, catalog, transforms. glue/etl_job.py wires them."""
