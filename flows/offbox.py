"""Off-box runbook: copy the box's repository, encrypted with age, to S3 (or a carried disk)."""

from __future__ import annotations

from prefect import flow

from flows.runbook import flow_config, run_name
from sbx.errors import ConfigError
from sbx.repository.replicate import CopyReport
from tasks.backup.offbox import copy_markdown, copy_repository, open_offbox
from tasks.reports import artifact_key, publish_markdown
from tasks.repository import open_repository


@flow(name="copy-offbox", flow_run_name=lambda: run_name("copy"), log_prints=False)
def copy_offbox(
    to: str | None = None,
    repo: str | None = None,
    stack: str | None = None,
    config_file: str | None = None,
) -> CopyReport:
    """Keep a secure copy off the box: send every snapshot the off-box repository lacks.

    Objects are encrypted with age to the configured recipients before they leave the box, and
    their names are encrypted too. Only missing objects are sent, manifests last, so a snapshot
    appears off-box only when it is whole and an interrupted copy resumes where it stopped.
    Fails (and the run shows Failed) when anything could not be sent.
    """
    config = flow_config(stack, config_file)
    url = to or config.offbox.url
    if not url:
        raise ConfigError(
            "No off-box location: pass --to s3://bucket/prefix or set offbox.url in sbx.toml "
            "(SBX_OFFBOX__URL)."
        )
    local = open_repository(config, repo)
    remote = open_offbox(config, url, local.info)
    report = copy_repository(local, remote, config)
    publish_markdown(
        artifact_key("copy", config.stack_dir.name), copy_markdown(report), f"Off-box copy to {url}"
    )
    return report
