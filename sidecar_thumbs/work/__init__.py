"""Work: render jobs, planning a scan, the pipeline that commits results, the executors."""
