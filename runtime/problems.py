"""RFC 9457 problem details for every error the HTTP edge returns."""
import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from sqlalchemy.exc import DBAPIError
from starlette.routing import Match

from runtime.db import DATABASE_UNREACHABLE, database_unreachable
from runtime.logging import get_logger

PROBLEM_JSON = "application/problem+json"
_BODY_PARSE_ERROR = "There was an error parsing the body"
TYPE_BASE = "https://hotline111.example/problems/"
log = get_logger(__name__)


class DomainError(Exception):
    """A request the domain refuses; `field` names the input at fault, if one is."""

    status = 422
    kind = "validation-error"

    def __init__(self, detail: str, field: str | None = None, errors: list[dict] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.errors = errors  # several problems at once (e.g. every bad row of a file), each naming its field


class NotFound(DomainError):
    status = 404
    kind = "not-found"


class Conflict(DomainError):
    status = 409
    kind = "conflict"


class PreconditionFailed(DomainError):
    """If-Match names a version that is no longer current: someone changed it since it was read."""

    status = 412
    kind = "precondition-failed"


class PreconditionRequired(DomainError):
    """A change sent without If-Match: it would overwrite changes it never saw."""

    status = 428
    kind = "precondition-required"


class Unauthorized(DomainError):
    """No valid bearer token. `error` is the RFC 6750 error code for the WWW-Authenticate challenge
    (None when no token was sent at all)."""

    status = 401
    kind = "unauthorized"

    def __init__(self, detail: str, field: str | None = None, *, error: str | None = "invalid_token"):
        super().__init__(detail, field)
        challenge = 'Bearer realm="hotline111"' + (f', error="{error}"' if error else "")
        self.headers = {"WWW-Authenticate": challenge}


class Forbidden(DomainError):
    status = 403
    kind = "forbidden"


def problem(status: int, title: str, detail: str, instance: str, kind: str, **extra) -> JSONResponse:
    body = {"type": TYPE_BASE + kind, "title": title, "status": status, "detail": detail, "instance": instance}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _field_errors(exc: RequestValidationError) -> list[dict]:
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where = loc[0] if loc and loc[0] in ("body", "query", "path", "header", "cookie") else "body"
        path = loc[1:] if loc and loc[0] == where else loc
        field = ".".join(path) if path and err.get("type") != "json_invalid" else where
        # Never echo the input back: it may be a name or a phone number.
        errors.append({"field": field, "in": where, "detail": err.get("msg", ""), "code": err.get("type", "")})
    return errors


async def _refused(request: Request) -> "DomainError | None":
    """The auth decision on a request that failed validation: FastAPI parses a JSON body before it runs any
    dependency, so without this a stranger sending a body that is not JSON would get a 422, not a 401."""
    from runtime.auth import refusal  # here: runtime.auth imports this module

    return await refusal(request)


_HEADERS = frozenset({"if-match", "idempotency-key", "authorization"})


def _where(request: Request, field: str) -> str:
    """Where the field a domain error names was sent: a path or query parameter, a header, or the body."""
    root = field.split(".")[0]
    if root in request.path_params:
        return "path"
    if root in request.query_params:
        return "query"
    if root.lower() in _HEADERS:
        return "header"
    return "body"


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path. Starlette's 405 names only the first route's, but
    FastAPI makes one route per method (GET and PATCH /cases/{id} are two). On the 405 path only."""
    routes = request.app.router.routes
    return ", ".join(m for m in _METHODS
                     if any(route.matches({**request.scope, "method": m})[0] is Match.FULL for route in routes))


def install_problem_handlers(app: FastAPI) -> None:
    async def _database_away(request: Request, exc: Exception):
        """A restart or failover is no fault of the request: 503 and a hint to retry, not a 500."""
        if not database_unreachable(exc):
            raise exc  # a statement that failed: the server error it is
        log.warning("database_unreachable", path=request.url.path, error=type(exc).__name__)
        response = problem(503, "Service unavailable", "The database cannot be reached just now; try again shortly.",
                           request.url.path, "database-unavailable")
        response.headers["Retry-After"] = "2"
        return response

    # The driver's own errors too: a raw connection a restart cut says so in them (runtime.db).
    for unreachable in (DBAPIError, asyncpg.InterfaceError, asyncpg.InternalClientError, *DATABASE_UNREACHABLE):
        app.add_exception_handler(unreachable, _database_away)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        if (refused := await _refused(request)) is not None:
            return await _domain(request, refused)
        errors = _field_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['detail']}" for e in errors)
        return problem(422, "Invalid request", detail, request.url.path, "validation-error", errors=errors)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError):
        if exc.errors:
            extra = {"errors": exc.errors}
        elif exc.field:
            extra = {"errors": [{"field": exc.field, "in": _where(request, exc.field), "detail": exc.detail,
                                 "code": exc.kind}]}
        else:
            extra = {}
        titles = {401: "Unauthorized", 403: "Forbidden", 404: "Not found", 409: "Conflict", 503: "Service unavailable"}
        title = titles.get(exc.status, "Invalid request")
        # Same shape as field validation errors, so clients handle one format.
        response = problem(exc.status, title, exc.detail, request.url.path, exc.kind, **extra)
        response.headers.update(getattr(exc, "headers", None) or {})  # e.g. WWW-Authenticate on 401
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400 and exc.detail == _BODY_PARSE_ERROR:
            if (refused := await _refused(request)) is not None:
                return await _domain(request, refused)
            # FastAPI's answer to a body that is not even text; to clients it is malformed JSON like any other.
            errors = [{"field": "body", "in": "body", "detail": "not valid UTF-8 JSON", "code": "json_invalid"}]
            return problem(422, "Invalid request", "body: not valid UTF-8 JSON", request.url.path,
                           "validation-error", errors=errors)
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        detail = exc.detail if isinstance(exc.detail, str) else title
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No resource at {request.url.path}"
        response = problem(exc.status_code, title, detail, request.url.path, f"http-{exc.status_code}")
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # a 405 must say which methods the resource has (Allow, RFC 9110)
            response.headers["Allow"] = _allowed_methods(request) or response.headers.get("Allow", "")
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled_error", path=request.scope.get("route").path if request.scope.get("route") else None)
        return problem(500, "Internal error", "The request could not be completed.", request.url.path, "internal")


# --- OpenAPI: every error is documented as what it is, an application/problem+json problem -------------------

PROBLEM_SCHEMA = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details. `errors` names each field at fault; input values are never echoed.",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ProblemError"}},
    },
}
PROBLEM_ERROR_SCHEMA = {
    "type": "object",
    "title": "ProblemError",
    "required": ["field", "detail"],
    "properties": {
        "field": {"type": "string", "description": "The field at fault, dotted (victims.0.age), or a header name"},
        "in": {"type": "string", "description": "body, query, path or header"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "row": {"type": "integer", "description": "In an imported file: the row (CSV line or YAML item)"},
    },
}
PROBLEM_DESCRIPTIONS = {
    400: "Bad request",
    401: "No valid bearer token (or link): `WWW-Authenticate` says why",
    403: "The token lacks a role this needs",
    404: "No such resource (or not one the caller may see)",
    409: "The resource's state does not allow this",
    412: "`If-Match` names a version that is no longer current: read it again",
    413: "The body is too large",
    422: "Invalid input: `errors[].field` names each field at fault",
    428: "`If-Match` is required",
    503: "A dependency (e.g. the identity provider) is unavailable; retry shortly",
}


def problems(*statuses: int) -> dict[int | str, dict]:
    """For a route's `responses=`: the problems it may answer besides the ones every route documents
    (401 and 403 where a token is needed, 422 where it takes input)."""
    return {status: {"description": PROBLEM_DESCRIPTIONS[status]} for status in statuses}


def document_problems(app: FastAPI) -> None:
    """Make the app's OpenAPI document say what the handlers above answer: every 4xx/5xx is
    application/problem+json (not FastAPI's HTTPValidationError), and every operation that needs a token
    documents 401 (with its WWW-Authenticate challenge), 403 and 503 (the identity provider unreachable)."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            _document(build())
        return app.openapi_schema

    app.openapi = openapi


def _document(schema: dict) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    components["ProblemError"] = PROBLEM_ERROR_SCHEMA
    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            if operation.get("security"):
                responses.setdefault("401", {"description": PROBLEM_DESCRIPTIONS[401]})
                responses["401"].setdefault("headers", {"WWW-Authenticate": {
                    "description": "The Bearer challenge (RFC 6750)", "schema": {"type": "string"}}})
                responses.setdefault("403", {"description": PROBLEM_DESCRIPTIONS[403]})
                responses.setdefault("503", {"description": PROBLEM_DESCRIPTIONS[503]})
            for code, response in responses.items():
                documented = response.get("content", {})
                if code[0] in "45" and (not documented or "HTTPValidationError" in str(documented)):
                    response["content"] = content
                    if code == "422":
                        response["description"] = PROBLEM_DESCRIPTIONS[422]
            operation["responses"] = dict(sorted(responses.items()))
    if "HTTPValidationError" not in str(schema.get("paths")):
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
