"""RFC 9457 problem details for every error the HTTP edge returns."""
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = _field_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['detail']}" for e in errors)
        return problem(422, "Invalid request", detail, request.url.path, "validation-error", errors=errors)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError):
        if exc.errors:
            extra = {"errors": exc.errors}
        elif exc.field:
            extra = {"errors": [{"field": exc.field, "in": "body", "detail": exc.detail, "code": exc.kind}]}
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
            # FastAPI's answer to a body that is not even text; to clients it is malformed JSON like any other.
            errors = [{"field": "body", "in": "body", "detail": "not valid UTF-8 JSON", "code": "json_invalid"}]
            return problem(422, "Invalid request", "body: not valid UTF-8 JSON", request.url.path,
                           "validation-error", errors=errors)
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        detail = exc.detail if isinstance(exc.detail, str) else title
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No resource at {request.url.path}"
        return problem(exc.status_code, title, detail, request.url.path, f"http-{exc.status_code}")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled_error", path=request.scope.get("route").path if request.scope.get("route") else None)
        return problem(500, "Internal error", "The request could not be completed.", request.url.path, "internal")
