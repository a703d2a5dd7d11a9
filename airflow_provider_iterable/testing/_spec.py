"""Request-body schemas of the Iterable API endpoints the simulator serves.

Taken from Iterable's own Swagger 2.0 description of its API ("Iterable API" v1.8, published under
the MIT license with Iterable's TypeScript client), reduced to the definitions these endpoints
reference and stripped of their prose. Swagger 2.0 definitions are JSON Schema (draft 4) objects,
so :mod:`jsonschema` validates bodies against them directly.
"""

from __future__ import annotations

from typing import Any

#: ``"METHOD /api/path-template"`` -> name of the definition its JSON body must match.
BODY_DEFINITIONS: dict[str, str] = {
    "POST /api/email/target": "TargetEmailRequest",
    "POST /api/events/track": "TrackRequest",
    "POST /api/events/trackBulk": "BulkTrackRequest",
    "POST /api/lists": "CreateListRequest",
    "POST /api/lists/subscribe": "SubscribeRequest",
    "POST /api/lists/unsubscribe": "UnsubscribeRequest",
    "POST /api/sms/target": "TargetSMSRequest",
    "POST /api/users/bulkUpdate": "BulkUpdateUsersRequest",
    "POST /api/users/update": "ApiUserUpdateRequest",
    "POST /api/users/updateSubscriptions": "UpdateSubscriptionsRequest",
    "POST /api/workflows/triggerWorkflow": "TriggerWorkflowRequest",
}

#: Definitions by name, as in the spec's ``definitions`` section.
DEFINITIONS: dict[str, dict[str, Any]] = {
    "ApiUserUpdateRequest": {
        "properties": {
            "createNewFields": {"type": "boolean"},
            "dataFields": {"type": "object"},
            "email": {"type": "string"},
            "mergeNestedObjects": {"type": "boolean"},
            "preferUserId": {"type": "boolean"},
            "userId": {"type": "string"},
        },
        "type": "object",
    },
    "BulkTrackRequest": {
        "properties": {"events": {"items": {"$ref": "#/definitions/TrackRequest"}, "type": "array"}},
        "required": ["events"],
        "type": "object",
    },
    "BulkUpdateUsersRequest": {
        "properties": {
            "createNewFields": {"type": "boolean"},
            "users": {"items": {"$ref": "#/definitions/OptionalApiUser"}, "type": "array"},
        },
        "required": ["users"],
        "type": "object",
    },
    "CreateListRequest": {
        "properties": {"description": {"type": "string"}, "name": {"type": "string"}},
        "required": ["name"],
        "type": "object",
    },
    "OptionalApiUser": {
        "properties": {
            "dataFields": {"type": "object"},
            "email": {"type": "string"},
            "mergeNestedObjects": {"type": "boolean"},
            "preferUserId": {"type": "boolean"},
            "userId": {"type": "string"},
        },
        "type": "object",
    },
    "SubscribeRequest": {
        "properties": {
            "listId": {"format": "int64", "type": "integer"},
            "subscribers": {"items": {"$ref": "#/definitions/OptionalApiUser"}, "type": "array"},
            "updateExistingUsersOnly": {"type": "boolean"},
        },
        "required": ["listId", "subscribers"],
        "type": "object",
    },
    "TargetEmailRequest": {
        "properties": {
            "allowRepeatMarketingSends": {"type": "boolean"},
            "campaignId": {"format": "int64", "type": "integer"},
            "dataFields": {"type": "object"},
            "metadata": {"type": "object"},
            "recipientEmail": {"type": "string"},
            "recipientUserId": {"type": "string"},
            "sendAt": {"type": "string"},
        },
        "required": ["campaignId"],
        "type": "object",
    },
    "TargetSMSRequest": {
        "properties": {
            "allowRepeatMarketingSends": {"type": "boolean"},
            "campaignId": {"format": "int64", "type": "integer"},
            "dataFields": {"type": "object"},
            "recipientEmail": {"type": "string"},
            "recipientUserId": {"type": "string"},
            "sendAt": {"type": "string"},
        },
        "required": ["campaignId"],
        "type": "object",
    },
    "TrackRequest": {
        "properties": {
            "campaignId": {"format": "int64", "type": "integer"},
            "createNewFields": {"type": "boolean"},
            "createdAt": {"format": "int64", "type": "integer"},
            "dataFields": {"type": "object"},
            "email": {"type": "string"},
            "eventName": {"type": "string"},
            "id": {"type": "string"},
            "templateId": {"format": "int64", "type": "integer"},
            "userId": {"type": "string"},
        },
        "required": ["eventName"],
        "type": "object",
    },
    "TriggerWorkflowRequest": {
        "properties": {
            "dataFields": {"type": "object"},
            "email": {"type": "string"},
            "listId": {"format": "int32", "type": "integer"},
            "userId": {"type": "string"},
            "workflowId": {"format": "int64", "type": "integer"},
        },
        "required": ["workflowId"],
        "type": "object",
    },
    "UnsubscribeRequest": {
        "properties": {
            "campaignId": {"format": "int64", "type": "integer"},
            "channelUnsubscribe": {"type": "boolean"},
            "listId": {"format": "int64", "type": "integer"},
            "subscribers": {"items": {"$ref": "#/definitions/Unsubscriber"}, "type": "array"},
        },
        "required": ["listId", "subscribers"],
        "type": "object",
    },
    "Unsubscriber": {
        "properties": {"email": {"type": "string"}, "userId": {"type": "string"}},
        "type": "object",
    },
    "UpdateSubscriptionsRequest": {
        "properties": {
            "campaignId": {"format": "int64", "type": "integer"},
            "email": {"type": "string"},
            "emailListIds": {"items": {"format": "int64", "type": "integer"}, "type": "array"},
            "subscribedMessageTypeIds": {"items": {"format": "int64", "type": "integer"}, "type": "array"},
            "templateId": {"format": "int64", "type": "integer"},
            "unsubscribedChannelIds": {"items": {"format": "int64", "type": "integer"}, "type": "array"},
            "unsubscribedMessageTypeIds": {"items": {"format": "int64", "type": "integer"}, "type": "array"},
            "userId": {"type": "string"},
            "validateChannelAlignment": {"type": "boolean"},
        },
        "type": "object",
    },
}
