"""The plan: the contract between the compiler, which writes it, and the runtime, which reads it.

It depends on nothing else of tqflow's: the model of flows, jobs and policies (`model`), durations,
priorities, fire times of schedules, and how a plan names Python modules."""

from tqflow.plan.model import (
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    PLAN_SCHEMA,
    CatchupPlan,
    ExprTree,
    FlowPlan,
    JobPlan,
    OutputPlan,
    ParamPlan,
    Plan,
    RetryPlan,
    RetryRule,
    TaskRef,
    TriggerPlan,
    UniquePlan,
    canonical_json,
)
from tqflow.plan.priorities import LEVELS, PRIORITIES, Priority

__all__ = [
    "DEFAULT_PRIORITY",
    "DEFAULT_QUEUE",
    "LEVELS",
    "PLAN_SCHEMA",
    "PRIORITIES",
    "CatchupPlan",
    "ExprTree",
    "FlowPlan",
    "JobPlan",
    "OutputPlan",
    "ParamPlan",
    "Plan",
    "Priority",
    "RetryPlan",
    "RetryRule",
    "TaskRef",
    "TriggerPlan",
    "UniquePlan",
    "canonical_json",
]
