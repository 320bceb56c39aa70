"""Subscription frames serialized once per event and operation id, not once per subscriber.

Subscribers of one event with the same document and variables share one execution result
(`sharing.py`), so their `next` frames differ at most in the operation id the client chose.
The JSON of a frame is built once per (result data, operation id) and the same text is
written to every such subscriber; anything with errors or extensions goes the usual way.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from starlette.websockets import WebSocketDisconnect
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)

SIZE = 4096
_frames: OrderedDict[tuple[int, str], tuple[object, str]] = OrderedDict()
encode = json.JSONEncoder(separators=(",", ":")).encode


def next_frame(operation_id: str, data: object) -> str:
    """The `next` frame of `data` for `operation_id`, encoded once while it is recent."""
    key = (id(data), operation_id)
    found = _frames.get(key)
    if found is not None and found[0] is data:
        return found[1]
    text = f'{{"id":{encode(operation_id)},"type":"next","payload":{{"data":{encode(data)}}}}}'
    _frames[key] = (data, text)  # holding `data` keeps its id from being reused meanwhile
    if len(_frames) > SIZE:
        _frames.popitem(last=False)
    return text


class SharedFrames(BaseGraphQLTransportWSHandler[Any, None]):
    """graphql-transport-ws with `next` frames encoded once for all subscribers alike."""

    async def send_message(self, message: Any) -> None:
        payload = message.get("payload")
        if message.get("type") != "next" or not isinstance(payload, dict) or len(payload) != 1:
            await super().send_message(message)
            return
        text = next_frame(message["id"], payload["data"])
        try:
            await self.websocket.ws.send_text(text)  # type: ignore[attr-defined]
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc
