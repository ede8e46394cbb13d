"""REST v1: pay options, refunds and personal payment requests."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["payments"])
