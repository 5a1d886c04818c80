"""The pipeline's stages, one module each: what a shard of the stage computes, read from and
written to the run directory. Where and how shards run (local processes, SLURM, ...) lives in
jobs/ beside this package."""
