"""Moved to `casewire_router.message_service` (issue 16). Kept only while tools/dev's
contracts command imports `EVENT_SOURCE` from here: delete once it imports it from there."""

from casewire_router.message_service import EVENT_SOURCE as EVENT_SOURCE
