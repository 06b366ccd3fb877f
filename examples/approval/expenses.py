"""Tasks of the approval example: a claim is prepared, paid once approved, answered when rejected, and
escalated when nobody decides in time."""

from __future__ import annotations

from dataclasses import dataclass

from tqflow.runtime import task


@dataclass
class Approval:
    """What the approver sends: the `approve` signal's payload."""

    approved: bool
    by: str
    comment: str = ""


@task
def prepare(claim: str, amount: int) -> str:
    return f"{claim}: {amount} EUR to review"


@task
def pay(claim: str, amount: int, approval: Approval) -> str:
    return f"paid {amount} EUR for {claim}, approved by {approval.by}"


@task
def reject(claim: str, approval: Approval) -> str:
    reason = f": {approval.comment}" if approval.comment else ""
    return f"{claim} rejected by {approval.by}{reason}"


@task
def escalate(claim: str) -> str:
    return f"{claim} escalated: nobody decided in time"
