"""Links out of the API: a flow run in the Prefect UI (when that UI is known)."""

from __future__ import annotations


def prefect_ui_url() -> str | None:
    from prefect.settings import PREFECT_UI_URL

    value = PREFECT_UI_URL.value()
    return str(value).rstrip("/") if value else None


def flow_run_url(flow_run_id: str | None) -> str | None:
    ui = prefect_ui_url()
    return f"{ui}/runs/flow-run/{flow_run_id}" if ui and flow_run_id else None
