"""Where render jobs run: the local process pool, inline, or a Dask cluster."""
