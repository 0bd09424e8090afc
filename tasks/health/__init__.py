"""Health checks of the sealed box, one module per family (design.md: ``flows/health.py``).

model.py          CheckResult, HealthContext, HealthReport (frozen, versioned)
context.py        what every family needs, read once: compose model, containers, URLs
http_services.py  worker/watchdog (models + one-token completion), qdrant, open-webui
containers.py     Docker engine, every configured container running and healthy
stats.py          container CPU and memory from the Docker stats API
disk.py           free space on the stack's and the repository's filesystems
backups.py        age of the newest snapshot (and of the off-box copy's) against the RPO
exposure.py       published addresses beyond loopback, the proxy's TLS certificate
verdicts.py       the watchdog's verdict log: high-risk tags repeated within a window
round.py          the families, running them concurrently, dependency suppression
metrics.py        the report as a Prometheus textfile
"""
