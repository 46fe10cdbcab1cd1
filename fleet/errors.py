"""The codes of the errors `fleet/` raises: organizations, teams, products, devices, customers,
events and calls to devices."""

from __future__ import annotations

from http import HTTPStatus

from core.errors import ErrorCode

BAD_REQUEST, FORBIDDEN, NOT_FOUND, CONFLICT, TOO_MANY_REQUESTS, BAD_GATEWAY = (
    HTTPStatus.BAD_REQUEST, HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT,
    HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.BAD_GATEWAY,
)


class FleetCode(ErrorCode):
    # Organizations and teams
    ALREADY_IN_ORGANIZATION = "ALREADY_IN_ORGANIZATION", CONFLICT, \
        "The user already belongs to an organization (a user has at most one)."
    INVALID_ROLE = "INVALID_ROLE", BAD_REQUEST, "Not a role that can be given."
    ALREADY_MEMBER = "ALREADY_MEMBER", CONFLICT, "The user is already on this team."
    IN_ANOTHER_ORGANIZATION = "IN_ANOTHER_ORGANIZATION", CONFLICT, \
        "The user is on another organization's team."
    INVITATION_EXPIRED = "INVITATION_EXPIRED", CONFLICT, "The invitation has expired."
    INVITATION_CLOSED = "INVITATION_CLOSED", CONFLICT, \
        "The invitation was already accepted, declined or revoked."
    OWNER_PROTECTED = "OWNER_PROTECTED", FORBIDDEN, \
        "The owner cannot be removed, demoted or leave; ownership moves first."
    ALREADY_OWNER = "ALREADY_OWNER", BAD_REQUEST, "The member is already the owner."
    NOT_OWNER = "NOT_OWNER", CONFLICT, "Only the owner transfers ownership."
    # Products and their clients
    INVALID_PLATFORM = "INVALID_PLATFORM", BAD_REQUEST, "Not a platform name."
    INVALID_CUSTOMER_AUTH = "INVALID_CUSTOMER_AUTH", BAD_REQUEST, \
        "Not a customer auth method (SIMPLE, TWO_LEGGED or LOGIN_WITH_PLATFORM)."
    INVALID_CLIENT_TYPE = "INVALID_CLIENT_TYPE", BAD_REQUEST, \
        "Not a client type (WEB, MOBILE or SERVER)."
    SERVER_CLIENT_CONFIDENTIAL = "SERVER_CLIENT_CONFIDENTIAL", BAD_REQUEST, \
        "A SERVER client authenticates with its secret: it cannot be public."
    PUBLIC_CLIENT_NO_SECRET = "PUBLIC_CLIENT_NO_SECRET", CONFLICT, \
        "A public client has no secret to rotate."
    # Devices
    INVALID_DEVICE_ID = "INVALID_DEVICE_ID", BAD_REQUEST, "Not 24 hexadecimal characters."
    NOT_IN_PRODUCT = "NOT_IN_PRODUCT", CONFLICT, "The device is in no product."
    NOT_PRODUCT_DEVICE = "NOT_PRODUCT_DEVICE", CONFLICT, \
        "The device is quarantined or denied, not one of the product's own devices."
    NO_CUSTOMER = "NO_CUSTOMER", CONFLICT, "The device has no customer."
    NOT_QUARANTINED = "NOT_QUARANTINED", CONFLICT, "The device is not in the quarantine."
    ALREADY_CLAIMED = "ALREADY_CLAIMED", CONFLICT, "Someone else claimed the device."
    DEVICE_OFFLINE = "DEVICE_OFFLINE", CONFLICT, "The device is not connected."
    NOT_CLAIMED = "NOT_CLAIMED", CONFLICT, "The device is not claimed by the caller."
    DEVICE_DENIED = "DEVICE_DENIED", FORBIDDEN, "The device's product denied it."
    DEVICE_MOVED = "DEVICE_MOVED", CONFLICT, \
        "The device moved to another product: its live stream ended; open it again."
    # SIMs
    INVALID_ICCID = "INVALID_ICCID", BAD_REQUEST, \
        "Not an ICCID: 19 or 20 digits starting with 89, the last one a Luhn check digit."
    ICCID_REQUIRED = "ICCID_REQUIRED", BAD_REQUEST, \
        "The device is not cellular yet: give its SIM's ICCID."
    # Device import
    FILE_TOO_LARGE = "FILE_TOO_LARGE", BAD_REQUEST, "The file is over the import limit."
    BINARY_FILE = "BINARY_FILE", BAD_REQUEST, "The file is not text."
    FILE_OR_LIST = "FILE_OR_LIST", BAD_REQUEST, "Send a file or a list of IDs, not both."
    TOO_MANY_DEVICE_IDS = "TOO_MANY_DEVICE_IDS", BAD_REQUEST, "Too many device IDs at once."
    CONCURRENT_CHANGE = "CONCURRENT_CHANGE", CONFLICT, \
        "The devices changed during the import; nothing was imported."
    # Customers
    CUSTOMER_AUTH_MISMATCH = "CUSTOMER_AUTH_MISMATCH", CONFLICT, \
        "The product's customer auth method does not work this way."
    CUSTOMER_EXISTS = "CUSTOMER_EXISTS", CONFLICT, "The product already has this customer."
    # Events
    INVALID_NAME = "INVALID_NAME", BAD_REQUEST, \
        "Not an event name: 1 to 64 letters, digits, '_', '-', '/' or '.'."
    RESERVED_NAME = "RESERVED_NAME", BAD_REQUEST, "Event names starting with 'spark' are ours."
    INVALID_DATA = "INVALID_DATA", BAD_REQUEST, "Event data that cannot be stored."
    DATA_TOO_LARGE = "DATA_TOO_LARGE", BAD_REQUEST, "Event data over the product's limit."
    INVALID_EVENT_ID = "INVALID_EVENT_ID", BAD_REQUEST, "Not an event ID."
    # Functions and variables
    ARGUMENT_TOO_LONG = "ARGUMENT_TOO_LONG", BAD_REQUEST, \
        "A function argument over 1024 characters."
    FUNCTION_NOT_FOUND = "FUNCTION_NOT_FOUND", NOT_FOUND, "The device has no such function."
    VARIABLE_NOT_FOUND = "VARIABLE_NOT_FOUND", NOT_FOUND, "The device has no such variable."
    DEVICE_FAILED = "DEVICE_FAILED", BAD_GATEWAY, \
        "The device failed to answer, or answered with a value of the wrong type."
    DATA_LIMIT_REACHED = "DATA_LIMIT_REACHED", TOO_MANY_REQUESTS, \
        "The organization's data operations for the month are used up: its devices are paused."
