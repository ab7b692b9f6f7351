"""What the demo accepts as a job, and 422 answers that can always be sent.

Python's JSON parser, which FastAPI uses, accepts ``NaN``, ``Infinity`` and ``1e999`` (an
infinity) and lone surrogates (``"\\ud800"``), none of which a JSON response can carry: such a
job, once stored, could never be served back, and FastAPI's own 422 echoes the bad input and
then fails to encode it (a 500). So the model refuses them, and `validation_error` renders
every 422 without the values it cannot encode.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = ["MAX_JOB_ID", "JobIn", "validation_error"]

# Job ids are 64-bit in both backends; a larger one cannot exist, and SQLite raises
# OverflowError on it instead of finding nothing.
MAX_JOB_ID = 2**63 - 1


def _storable(value: Any) -> Any:
    """*value*, if every number in it is finite and every string is valid Unicode."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number; JSON has no NaN or infinity")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                "a string contains a lone surrogate (an unpaired \\ud800-\\udfff escape), "
                "which is not valid Unicode"
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key)
            _storable(item)
    elif isinstance(value, list):
        for item in value:
            _storable(item)
    return value


class JobIn(BaseModel):
    """A job to enqueue: how long its simulated work takes, and any JSON payload."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(
        ge=0, le=60, allow_inf_nan=False, description="Simulated work, 0 to 60 seconds."
    )
    payload: Annotated[Any, AfterValidator(_storable)] = None


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """A 422 listing each error's location, message and type, and its input when that input
    can be encoded as JSON (never NaN, an infinity or a lone surrogate)."""
    assert isinstance(exc, RequestValidationError)  # registered for that class only
    errors = []
    for error in exc.errors():
        shown = {key: error[key] for key in ("type", "loc", "msg") if key in error}
        if "input" in error and _encodable(error["input"]):
            shown["input"] = error["input"]
        errors.append(shown)
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def _encodable(value: Any) -> bool:
    try:
        json.dumps(jsonable_encoder(value), allow_nan=False, ensure_ascii=False).encode()
    except (ValueError, TypeError):
        return False
    return True
